package forward_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	svix "github.com/svix/svix-webhooks/go"
	"go.uber.org/goleak"

	"github.com/caddy-webhooks/gateway/forward"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStatusSetAndRetryable(t *testing.T) {
	p := forward.Policy{}
	for status, want := range map[int]bool{
		200: false, 201: false, 301: false, 400: false, 401: false, 403: false, 404: false, 409: false, 422: false,
		408: true, 425: true, 429: true, 500: true, 502: true, 503: true, 504: true, 599: true,
	} {
		if got := p.Retryable(status, nil); got != want {
			t.Errorf("default Retryable(%d) = %v, want %v", status, got, want)
		}
	}
	if !p.Retryable(0, errors.New("connection reset")) {
		t.Error("a network error is not retried")
	}
	set, err := forward.ParseStatusSet([]string{"409", "5XX"})
	if err != nil {
		t.Fatal(err)
	}
	p.RetryOn = set
	if !p.Retryable(409, nil) || !p.Retryable(503, nil) || p.Retryable(429, nil) {
		t.Error("custom retry_on not honoured")
	}
	for _, bad := range []string{"abc", "99", "600", "6xx", "x5x", ""} {
		if _, err := forward.ParseStatusSet([]string{bad}); err == nil {
			t.Errorf("ParseStatusSet accepted %q", bad)
		}
	}
}

func TestDelay(t *testing.T) {
	low := forward.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second, Rand: func() float64 { return 0 }}
	high := forward.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second, Rand: func() float64 { return 0.999999 }}
	var prev time.Duration
	for n := 1; n <= 40; n++ {
		if d := low.Delay(n, 0); d != 0 {
			t.Errorf("full jitter at 0: Delay(%d) = %v", n, d)
		}
		d := high.Delay(n, 0)
		ceiling := min(2*time.Second, 100*time.Millisecond<<min(n-1, 30))
		if d > ceiling || d < ceiling*99/100 {
			t.Errorf("Delay(%d) = %v, want just under %v", n, d, ceiling)
		}
		if d < prev {
			t.Errorf("Delay(%d) = %v shrank from %v", n, d, prev)
		}
		prev = d
	}
	if d := low.Delay(1, 1500*time.Millisecond); d != 1500*time.Millisecond {
		t.Errorf("Retry-After not honoured: %v", d)
	}
	if d := low.Delay(1, time.Hour); d != 2*time.Second {
		t.Errorf("Retry-After not capped: %v", d)
	}
	sched := forward.Policy{Schedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}}
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 5 * time.Minute, 3: 30 * time.Minute, 9: 30 * time.Minute} {
		if d := sched.Delay(n, 0); d != want {
			t.Errorf("schedule Delay(%d) = %v, want %v", n, d, want)
		}
	}
	if d := sched.Delay(1, time.Minute); d != time.Minute {
		t.Errorf("schedule with Retry-After: %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		d  time.Duration
		ok bool
	}{
		"120":                           {2 * time.Minute, true},
		"0":                             {0, true},
		"Mon, 23 Nov 2026 10:00:30 GMT": {30 * time.Second, true},
		"Mon, 23 Nov 2026 09:00:00 GMT": {0, true},
		"-5":                            {0, false},
		"soon":                          {0, false},
		"":                              {0, false},
	}
	for v, want := range cases {
		d, ok := forward.ParseRetryAfter(v, now)
		if d != want.d || ok != want.ok {
			t.Errorf("ParseRetryAfter(%q) = %v %v, want %v %v", v, d, ok, want.d, want.ok)
		}
	}
}

func TestURLTemplate(t *testing.T) {
	for _, bad := range []string{
		"ftp://host/x", "host/x", "http://{json.host}/x", "https://api.example.com:{json.port}/",
		"http://user:{env.X}@host/", "{json.scheme}://host/", "http:///path",
	} {
		if _, err := forward.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	tmpl, err := forward.ParseURL("https://api.example.com/pets/{p.name}/x?tag={p.tag}&keep=1&u={unknown}")
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"p.name": "..?x=1#f@evil.com:8080 ", "p.tag": "a&b=c#d http://evil/../%2F"}
	got, err := tmpl.Resolve(func(k string) (string, bool) { v, ok := values[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, got, nil)
	if err != nil {
		t.Fatalf("resolved URL %q does not parse: %v", got, err)
	}
	if req.URL.Scheme != "https" || req.URL.Host != "api.example.com" {
		t.Errorf("payload changed the destination: %s", got)
	}
	segs := strings.Split(req.URL.EscapedPath(), "/")
	if len(segs) != 4 || segs[1] != "pets" || segs[3] != "x" {
		t.Errorf("payload added path segments: %s", req.URL.EscapedPath())
	}
	if req.URL.Path != "/pets/..?x=1#f@evil.com:8080 /x" {
		t.Errorf("decoded path %q", req.URL.Path)
	}
	q := req.URL.Query()
	if q.Get("tag") != values["p.tag"] || q.Get("keep") != "1" || len(q) != 3 || q.Get("u") != "{unknown}" {
		t.Errorf("query %v", q)
	}
	if u, _ := forward.ParseURL("https://u:secret@h.example/p?token=abc"); strings.Contains(u.String(), "secret") || strings.Contains(u.String(), "abc") {
		t.Errorf("String() shows credentials: %s", u)
	}
}

// recorder is a real upstream that records what it receives.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
	bodies  [][]byte
}

func (rec *recorder) add(r *http.Request) int {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.bodies = append(rec.bodies, b)
	return len(rec.bodies)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.bodies)
}

func newClient(t *testing.T, sleeps *[]time.Duration) *forward.Client {
	var mu sync.Mutex
	c := forward.NewClient(forward.ClientOptions{
		MaxResponseBytes: 64 << 10,
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			if sleeps != nil {
				*sleeps = append(*sleeps, d)
			}
			mu.Unlock()
			if err := ctx.Err(); err != nil {
				return err
			}
			return nil
		},
	})
	t.Cleanup(c.Close)
	return c
}

var body = []byte(`{"Name":"Gromit","Status":"Sold","note":"<caf\u00e9>"}`)

func TestRetriesUntilSuccess(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec.add(r) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Connection", "close")
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":42}`))
	}))
	defer srv.Close()
	var attempts []forward.Attempt
	c := newClient(t, nil)
	res := c.Do(context.Background(), &forward.Request{
		ID: "evt_1", URL: srv.URL + "/pets", Body: body,
		Header:  http.Header{"Content-Type": {"application/json"}, "X-Api-Key": {"k"}},
		Policy:  forward.Policy{Retries: 3, Base: time.Millisecond, Max: time.Millisecond},
		Observe: func(a forward.Attempt) { attempts = append(attempts, a) },
	})
	if !res.OK() || res.Status != 201 || res.Attempts != 3 || string(res.Body) != `{"id":42}` || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	if res.Header.Get("X-Upstream") != "yes" || res.Header.Get("Connection") != "" {
		t.Errorf("headers %v: end-to-end kept, hop-by-hop removed", res.Header)
	}
	if len(attempts) != 3 || attempts[0].Status != 503 || attempts[2].Status != 201 || attempts[2].Delay != 0 {
		t.Errorf("observed %+v", attempts)
	}
	for i, h := range rec.headers {
		if h.Get("Idempotency-Key") != "evt_1" || h.Get("Webhook-Attempt") != strconv.Itoa(i+1) || h.Get("X-Api-Key") != "k" || string(rec.bodies[i]) != string(body) {
			t.Errorf("attempt %d: %v %s", i+1, h, rec.bodies[i])
		}
	}
}

func TestOutcomes(t *testing.T) {
	cases := []struct {
		name      string
		handler   func(n int, w http.ResponseWriter, r *http.Request)
		timeout   time.Duration
		wantN     int
		wantOK    bool
		wantErr   bool
		wantTO    bool
		wantSleep []time.Duration
	}{
		{name: "400 not retried", handler: func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }, wantN: 1},
		{name: "302 not followed", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.2/elsewhere", http.StatusFound)
		}, wantN: 1},
		{name: "429 with Retry-After", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(429)
				return
			}
			w.WriteHeader(200)
		}, wantN: 2, wantOK: true, wantSleep: []time.Duration{7 * time.Second}},
		{name: "503 exhausted", handler: func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, wantN: 3, wantErr: true},
		{name: "reset then ok", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				conn, _, _ := w.(http.Hijacker).Hijack()
				_ = conn.(*net.TCPConn).SetLinger(0)
				_ = conn.Close()
				return
			}
			w.WriteHeader(204)
		}, wantN: 2, wantOK: true},
		{name: "hang past timeout", timeout: 100 * time.Millisecond, handler: func(n int, w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, wantN: 3, wantErr: true, wantTO: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.handler(rec.add(r), w, r) }))
			defer srv.Close()
			var sleeps []time.Duration
			c := newClient(t, &sleeps)
			res := c.Do(context.Background(), &forward.Request{
				ID: "e", URL: srv.URL, Body: body, Timeout: tc.timeout,
				Policy: forward.Policy{Retries: 2, Base: time.Millisecond, Max: 10 * time.Second, Rand: func() float64 { return 0 }},
			})
			if res.Attempts != tc.wantN || rec.count() != tc.wantN || res.OK() != tc.wantOK || (res.Err != nil) != tc.wantErr || res.TimedOut != tc.wantTO {
				t.Fatalf("result %+v (upstream saw %d)", res, rec.count())
			}
			if tc.wantSleep != nil && (len(sleeps) != 1 || sleeps[0] != tc.wantSleep[0]) {
				t.Errorf("slept %v, want %v", sleeps, tc.wantSleep)
			}
		})
	}
}

func TestDownUpstream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{URL: "http://" + addr, Body: body, Policy: forward.Policy{Retries: 2}})
	if res.Attempts != 3 || res.Err == nil || res.Status != 0 || res.OK() {
		t.Fatalf("result %+v", res)
	}
}

func TestContextEndsRetries(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.add(r); w.WriteHeader(503) }))
	defer srv.Close()
	c := forward.NewClient(forward.ClientOptions{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := c.Do(ctx, &forward.Request{URL: srv.URL, Body: body, Policy: forward.Policy{Retries: 1000, Base: 50 * time.Millisecond, Max: 50 * time.Millisecond}})
	// the attempt under way when the deadline came may be cut before the
	// upstream sees it: every other attempt reached it
	if seen := rec.count(); !res.TimedOut || res.OK() || seen >= 1000 || res.Attempts != seen && res.Attempts != seen+1 {
		t.Fatalf("result %+v, upstream saw %d", res, seen)
	}
	// a sender that hangs up: cancelled, not timed out
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	res = c.Do(ctx, &forward.Request{URL: srv.URL, Body: body, Policy: forward.Policy{Retries: 5}})
	if res.TimedOut || res.OK() || res.Attempts != 1 {
		t.Fatalf("cancelled: %+v", res)
	}
}

func TestResponseIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: 5 * time.Second})
	if res.Status != 200 || len(res.Body) != 64<<10 {
		t.Fatalf("status %d, body %d bytes, want 200 and the 64 KiB bound", res.Status, len(res.Body))
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	c := newClient(t, nil)
	res := c.Do(context.Background(), &forward.Request{URL: srv.URL, Body: body})
	if res.OK() || res.Err == nil {
		t.Fatalf("untrusted certificate accepted: %+v", res)
	}
	res = c.Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, InsecureSkipVerify: true})
	if !res.OK() {
		t.Fatalf("tls_insecure_skip_verify: %+v", res)
	}
}

func sigRequest(t *testing.T, signer forward.Signer) (http.Header, []byte) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.add(r) }))
	defer srv.Close()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{ID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f1W", URL: srv.URL, Body: body, Signer: signer})
	if !res.OK() || rec.count() != 1 {
		t.Fatalf("%+v", res)
	}
	return rec.headers[0], rec.bodies[0]
}

func TestSignStandard(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s, err := forward.NewSigner("standard", secret, forward.HMACOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, b := sigRequest(t, s)
	std, _ := standardwebhooks.NewWebhook(secret)
	if err := std.Verify(b, h); err != nil {
		t.Errorf("Standard Webhooks library: %v", err)
	}
	sx, _ := svix.NewWebhook(secret)
	if err := sx.Verify(b, h); err != nil {
		t.Errorf("svix library: %v", err)
	}
	if h.Get("webhook-id") != "msg_2KWPBgLlAfxdpx2AI54pPJ85f1W" {
		t.Errorf("webhook-id %q", h.Get("webhook-id"))
	}
	other, _ := standardwebhooks.NewWebhook("whsec_b3RoZXIgc2VjcmV0IGtleQ==")
	if other.Verify(b, h) == nil {
		t.Error("another secret verifies our signature")
	}
}

func TestSignGitHubAndHMAC(t *testing.T) {
	s, err := forward.NewSigner("github", "gh-out", forward.HMACOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, b := sigRequest(t, s)
	if err := github.ValidateSignature(h.Get("X-Hub-Signature-256"), b, []byte("gh-out")); err != nil {
		t.Errorf("go-github: %v", err)
	}
	m := hmac.New(sha256.New, []byte("gh-out"))
	m.Write(b)
	if h.Get("X-Hub-Signature-256") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
		t.Error("differs from the documented algorithm")
	}

	algs := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}
	encs := map[string]func([]byte) string{"hex": hex.EncodeToString, "base64": base64.StdEncoding.EncodeToString, "base64url": base64.RawURLEncoding.EncodeToString}
	for alg, newHash := range algs {
		for enc, encode := range encs {
			s, err := forward.NewSigner("hmac", "k", forward.HMACOptions{Header: "X-Sig", Algorithm: alg, Encoding: enc, Prefix: "v1="})
			if err != nil {
				t.Fatal(err)
			}
			h, b := sigRequest(t, s)
			m := hmac.New(newHash, []byte("k"))
			m.Write(b)
			if want := "v1=" + encode(m.Sum(nil)); h.Get("X-Sig") != want {
				t.Errorf("%s/%s: %q, want %q", alg, enc, h.Get("X-Sig"), want)
			}
		}
	}
	for _, bad := range [][3]string{{"standard", "whsec_!!", ""}, {"hmac", "k", ""}, {"rot13", "k", ""}, {"github", "", ""}} {
		if _, err := forward.NewSigner(bad[0], bad[1], forward.HMACOptions{Header: bad[2]}); err == nil {
			t.Errorf("NewSigner%v accepted", bad)
		}
	}
}

func BenchmarkDo(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(200)
	}))
	defer srv.Close()
	c := forward.NewClient(forward.ClientOptions{})
	defer c.Close()
	payload := []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
	req := &forward.Request{ID: "e", URL: srv.URL, Body: payload, Header: http.Header{"Content-Type": {"application/json"}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if res := c.Do(context.Background(), req); !res.OK() {
			b.Fatal(res)
		}
	}
}
