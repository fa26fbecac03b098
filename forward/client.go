package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Defaults of the client.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	// drainLimit bounds what is read past MaxResponseBytes to keep a
	// connection reusable; beyond it the connection is closed.
	drainLimit = 4 << 20
	// maxResponseHeaderBytes bounds an upstream's response headers, which
	// are held in memory and, in sync mode, copied to the sender (Go's
	// default is 10 MiB).
	maxResponseHeaderBytes = 1 << 20
)

// Header names every attempt carries.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderAttempt        = "Webhook-Attempt"
)

// ErrGaveUp wraps the last retryable status when retries are exhausted.
var ErrGaveUp = errors.New("retries exhausted")

// ClientOptions configure a Client.
type ClientOptions struct {
	// MaxResponseBytes of a response body kept for the caller. Default 1 MiB.
	MaxResponseBytes int64
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends; nil uses a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client delivers requests over pooled connections. Safe for concurrent
// use; one per handler.
type Client struct {
	opts     ClientOptions
	secure   *http.Client
	insecure struct {
		once   sync.Once
		client *http.Client
	}
}

// NewClient makes a client with its own connection pool.
func NewClient(opts ClientOptions) *Client {
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	return &Client{opts: opts, secure: newHTTPClient(false)}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newHTTPClient makes a client that sends where it is told: no proxy from
// the environment, no redirects followed.
func newHTTPClient(insecure bool) *http.Client {
	tr := &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opted into by tls_insecure_skip_verify
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Close closes the idle connections of every transport the client made.
func (c *Client) Close() {
	c.secure.CloseIdleConnections()
	c.insecure.once.Do(func() {}) // no insecure client after Close
	if c.insecure.client != nil {
		c.insecure.client.CloseIdleConnections()
	}
}

func (c *Client) httpClient(insecure bool) *http.Client {
	if !insecure {
		return c.secure
	}
	c.insecure.once.Do(func() { c.insecure.client = newHTTPClient(true) })
	if c.insecure.client == nil {
		return c.secure
	}
	return c.insecure.client
}

// Request is one delivery to one action.
type Request struct {
	ID                 string        // sent as Idempotency-Key on every attempt
	Method             string        // default POST
	URL                string        // resolved URL
	Header             http.Header   // extra headers
	Body               []byte        // sent as is on every attempt
	Timeout            time.Duration // per attempt, default 30s
	Policy             Policy
	Signer             Signer // optional; signs each attempt
	InsecureSkipVerify bool
	FirstAttempt       int           // number of the first attempt, default 1
	Observe            func(Attempt) // optional, after each attempt
	// HTTPClient, when set, makes the attempts instead of the client's own
	// pool (a callback's, which dials only to allowed addresses); it must
	// not follow redirects.
	HTTPClient *http.Client
}

// Attempt describes one try.
type Attempt struct {
	N        int
	Status   int   // 0 if no response
	Err      error // transport error, nil if a response arrived
	Duration time.Duration
	Delay    time.Duration // wait before the next attempt, 0 if none follows
}

// Result is the outcome of all attempts.
type Result struct {
	Status int
	Header http.Header // hop-by-hop headers removed
	Body   []byte      // bounded by MaxResponseBytes
	// TooLarge: the response body was longer than MaxResponseBytes; Body
	// holds only its start and must not be passed on as the answer.
	TooLarge bool
	Attempts int
	Err      error // transport error (never holding the URL) or ErrGaveUp; nil when the last response was final
	TimedOut bool
	Duration time.Duration
}

// OK reports a 2xx outcome.
func (r Result) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

// Do sends req, retrying per its policy until a final response, retries
// run out, or ctx ends (a sender hanging up cancels pending retries).
func (c *Client) Do(ctx context.Context, req *Request) Result {
	start := c.opts.Now()
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	first := req.FirstAttempt
	if first < 1 {
		first = 1
	}
	hc := c.httpClient(req.InsecureSkipVerify)
	if req.HTTPClient != nil {
		hc = req.HTTPClient
	}

	var res Result
	for try := 0; ; try++ {
		n := first + try
		status, header, body, tooLarge, timedOut, took, err := c.attempt(ctx, hc, method, timeout, n, req)
		res = Result{Status: status, Header: header, Body: body, TooLarge: tooLarge, Attempts: try + 1, Err: err, TimedOut: timedOut}
		retry := try < req.Policy.Retries && ctx.Err() == nil && req.Policy.Retryable(status, err)
		at := Attempt{N: n, Status: status, Err: err, Duration: took}
		var delay time.Duration
		if retry {
			var ra time.Duration
			if v := header.Get("Retry-After"); v != "" {
				ra, _ = ParseRetryAfter(v, c.opts.Now())
			}
			delay = req.Policy.Delay(try+1, ra)
			at.Delay = delay
		}
		if req.Observe != nil {
			req.Observe(at)
		}
		if !retry {
			break
		}
		if err := c.opts.Sleep(ctx, delay); err != nil {
			res.TimedOut = res.TimedOut || errors.Is(ctx.Err(), context.DeadlineExceeded)
			break
		}
	}
	if res.Err == nil && res.Status != 0 && req.Policy.Retryable(res.Status, nil) && (res.Status < 200 || res.Status >= 300) {
		res.Err = fmt.Errorf("%w: last status %d", ErrGaveUp, res.Status)
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !res.OK() {
		res.TimedOut = true
	}
	res.Duration = c.opts.Now().Sub(start)
	return res
}

// attempt sends one try under its own timeout.
func (c *Client) attempt(ctx context.Context, hc *http.Client, method string, timeout time.Duration, n int, req *Request) (status int, header http.Header, body []byte, tooLarge, timedOut bool, took time.Duration, err error) {
	start := c.opts.Now()
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(actx, method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, whose query may hold a credential
		}
		return 0, nil, nil, false, false, 0, fmt.Errorf("%w: %v", errNotRetryable, err)
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	if hr.Header.Get("User-Agent") == "" {
		hr.Header.Set("User-Agent", "webhook_gateway")
	}
	if req.ID != "" {
		hr.Header.Set(HeaderIdempotencyKey, req.ID)
	}
	hr.Header.Set(HeaderAttempt, strconv.Itoa(n))
	if req.Signer != nil {
		req.Signer.Sign(hr.Header, req.ID, c.opts.Now(), req.Body)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// the operation and the cause, without the URL
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return 0, nil, nil, false, actx.Err() != nil && errors.Is(actx.Err(), context.DeadlineExceeded), c.opts.Now().Sub(start), err
	}
	defer func() { _ = resp.Body.Close() }()
	// one byte past the bound tells a body that was cut from one that fits
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxResponseBytes+1))
	if int64(len(body)) > c.opts.MaxResponseBytes {
		body, tooLarge = body[:c.opts.MaxResponseBytes], true
	}
	// drain a bounded rest so the connection can be reused, unless the
	// declared length says the rest is beyond the bound (the connection is
	// then closed instead)
	if resp.ContentLength < 0 || resp.ContentLength-int64(len(body)) <= drainLimit {
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	header = resp.Header
	removeHopByHop(header)
	if readErr != nil {
		timedOut = actx.Err() != nil && errors.Is(actx.Err(), context.DeadlineExceeded)
		return 0, header, nil, false, timedOut, c.opts.Now().Sub(start), readErr
	}
	return resp.StatusCode, header, body, tooLarge, false, c.opts.Now().Sub(start), nil
}

// hopByHop are the headers that belong to one connection (RFC 9110 7.6.1).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range bytes.Split([]byte(f), []byte{','}) {
			if n := string(bytes.TrimSpace(name)); n != "" {
				h.Del(n)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}
