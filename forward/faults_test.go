package forward_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/forward"
)

// rawUpstream is a TCP listener on loopback whose connections are handled
// by serve; every connection is closed and every goroutine ended when the
// test ends.
type rawUpstream struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	seen  atomic.Int32
}

func newRawUpstream(t *testing.T, serve func(c net.Conn)) *rawUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{l: l}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.seen.Add(1)
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			_ = c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.l.Addr().String() }

// readRequest reads one request from c, body included.
func readRequest(c net.Conn) error {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err
}

// zeros is an endless generator: a large response without allocating it.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// within fails the test when d reaches half of broken, the time the fault
// would take if the client did not handle it (it waited for an attempt
// timeout, a whole body, or forever). The timeouts in these tests are long
// on purpose, so the margin between a handled fault and a broken one is
// wide on a loaded machine: these are not speed checks.
func within(t *testing.T, what string, d, broken time.Duration) {
	t.Helper()
	if d >= broken/2 {
		t.Errorf("%s took %v: a client that did not handle the fault takes %v", what, d, broken)
	}
}

func TestFaultConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var attempts []forward.Attempt
	start := time.Now()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{
		URL: "http://" + addr + "/hook", Body: body, Timeout: 30 * time.Second,
		Policy:  forward.Policy{Retries: 2},
		Observe: func(a forward.Attempt) { attempts = append(attempts, a) },
	})
	// a refused connection fails at once: waiting for the timeout is 90s
	within(t, "connection refused", time.Since(start), 3*30*time.Second)
	if res.OK() || res.Status != 0 || res.TimedOut || res.Attempts != 3 || len(attempts) != 3 {
		t.Fatalf("result %+v, attempts %+v: want 3 attempts, no status, not a timeout", res, attempts)
	}
	if !errors.Is(res.Err, syscall.ECONNREFUSED) {
		t.Errorf("error %v is not connection refused", res.Err)
	}
	for _, a := range attempts {
		if a.Err == nil || a.Status != 0 {
			t.Errorf("attempt %+v: want a transport error and no status", a)
		}
	}
}

func TestFaultResetMidBody(t *testing.T) {
	// The upstream answers headers and part of the body, then resets the
	// connection (RST, not FIN).
	up := newRawUpstream(t, func(c net.Conn) {
		if readRequest(c) != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"partial\":")
		time.Sleep(20 * time.Millisecond)
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	})
	start := time.Now()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{
		URL: up.url(), Body: body, Timeout: 30 * time.Second, Policy: forward.Policy{Retries: 1},
	})
	// waiting for the rest of the body until the timeout is 60s
	within(t, "reset mid-body", time.Since(start), 2*30*time.Second)
	if res.OK() || res.Status != 0 || res.Err == nil || res.TimedOut || res.Attempts != 2 {
		t.Fatalf("result %+v: a body cut by a reset is a failed, retried attempt", res)
	}
	if len(res.Body) != 0 {
		t.Errorf("partial body %q kept as if it were an answer", res.Body)
	}
	if n := up.seen.Load(); n != 2 {
		t.Errorf("upstream saw %d connections, want 2 (the reset is retried)", n)
	}

	// The same through net/http's Hijack: reset right after the request.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 50\r\n\r\nshort")
		_ = buf.Flush()
		_ = conn.(*net.TCPConn).SetLinger(0)
		_ = conn.Close()
	}))
	defer srv.Close()
	res = newClient(t, nil).Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: 2 * time.Second})
	if res.OK() || res.Status != 0 || res.Err == nil || res.TimedOut || res.Attempts != 1 {
		t.Fatalf("hijacked reset: result %+v", res)
	}
}

func TestFaultUntrustedTLS(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	defer srv.Close()
	c := newClient(t, nil)

	res := c.Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: 2 * time.Second})
	if res.OK() || res.Status != 0 || res.Err == nil {
		t.Fatalf("untrusted certificate accepted: %+v", res)
	}
	var unknown x509.UnknownAuthorityError
	var verr *tls.CertificateVerificationError
	if !errors.As(res.Err, &unknown) && !errors.As(res.Err, &verr) {
		t.Errorf("error %v is not a certificate verification failure", res.Err)
	}
	if hits.Load() != 0 {
		t.Fatal("the request reached an upstream whose certificate failed")
	}

	res = c.Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: 2 * time.Second, InsecureSkipVerify: true})
	if !res.OK() || res.Status != http.StatusNoContent || hits.Load() != 1 {
		t.Fatalf("tls_insecure_skip_verify: %+v (hits %d)", res, hits.Load())
	}
	// skipping verification for one request does not leak to the next
	res = c.Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: 2 * time.Second})
	if res.OK() || hits.Load() != 1 {
		t.Fatalf("verification skipped for a request that did not ask: %+v", res)
	}
}

func TestFaultHeadersNeverSent(t *testing.T) {
	// A black hole: accepts, reads the request, never answers.
	up := newRawUpstream(t, func(c net.Conn) {
		_ = readRequest(c)
		_, _ = io.Copy(io.Discard, c) // until the client or cleanup closes
	})
	var attempts []forward.Attempt
	start := time.Now()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{
		URL: up.url(), Body: body, Timeout: 150 * time.Millisecond, Policy: forward.Policy{Retries: 2},
		Observe: func(a forward.Attempt) { attempts = append(attempts, a) },
	})
	took := time.Since(start)
	// the black hole never answers: without the timeout this would hang
	// until the cleanup; 60s is the test's own patience
	within(t, "three timed-out attempts", took, time.Minute)
	if took < 3*150*time.Millisecond {
		t.Errorf("three attempts of 150ms each ended after %v: the timeout did not wait", took)
	}
	if res.OK() || res.Status != 0 || res.Err == nil || !res.TimedOut || res.Attempts != 3 {
		t.Fatalf("result %+v: want a timed-out failure after 3 attempts", res)
	}
	for _, a := range attempts {
		if a.Duration < 100*time.Millisecond || a.Duration > 10*time.Second {
			t.Errorf("attempt %d took %v, want the 150ms timeout (an unbounded attempt never ends)", a.N, a.Duration)
		}
	}

	// The caller's deadline bounds the whole delivery, retries included.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	res = newClient(t, nil).Do(ctx, &forward.Request{
		URL: up.url(), Body: body, Timeout: time.Minute, Policy: forward.Policy{Retries: 50},
	})
	// an attempt that ignored the caller's deadline would wait its minute
	within(t, "delivery under a 200ms deadline", time.Since(start), time.Minute)
	if !res.TimedOut || res.OK() || res.Attempts != 1 {
		t.Fatalf("result %+v: want one attempt cut by the deadline", res)
	}
}

func TestFaultBodyTrickled(t *testing.T) {
	// Headers at once, then one byte every 20ms of a 3000-byte body (60s):
	// far longer than the attempt timeout.
	trickle := func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Length", fmt.Sprint(n))
		w.WriteHeader(http.StatusOK)
		f := w.(http.Flusher)
		f.Flush()
		for i := 0; i < n; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := w.Write([]byte{'x'}); err != nil {
				return
			}
			f.Flush()
		}
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { trickle(w, r, 3000) }))
	defer slow.Close()
	start := time.Now()
	res := newClient(t, nil).Do(context.Background(), &forward.Request{URL: slow.URL, Body: body, Timeout: 300 * time.Millisecond})
	within(t, "trickled body under a 300ms timeout", time.Since(start), 3000*20*time.Millisecond)
	if res.OK() || res.Status != 0 || res.Err == nil || !res.TimedOut || res.Attempts != 1 {
		t.Fatalf("result %+v: a body slower than the timeout is a timed-out attempt", res)
	}
	if len(res.Body) != 0 {
		t.Errorf("partial body of %d bytes kept", len(res.Body))
	}

	// A short trickle that ends inside the timeout is a normal answer.
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { trickle(w, r, 5) }))
	defer short.Close()
	res = newClient(t, nil).Do(context.Background(), &forward.Request{URL: short.URL, Body: body, Timeout: 2 * time.Second})
	if !res.OK() || string(res.Body) != "xxxxx" {
		t.Fatalf("short trickle: %+v", res)
	}
}

func TestFaultRedirectsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()

	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, target := range []string{"same host", "other host"} {
			t.Run(fmt.Sprintf("%d to %s", status, target), func(t *testing.T) {
				var hits, redirected atomic.Int32
				var srv *httptest.Server
				srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/moved" {
						redirected.Add(1)
						w.WriteHeader(http.StatusOK)
						return
					}
					hits.Add(1)
					loc := srv.URL + "/moved"
					if target == "other host" {
						loc = other.URL + "/moved"
					}
					w.Header().Set("Location", loc)
					w.WriteHeader(status)
				}))
				defer srv.Close()
				before := elsewhere.Load()
				res := newClient(t, nil).Do(context.Background(), &forward.Request{
					URL: srv.URL + "/hook", Body: body, Timeout: 2 * time.Second, Policy: forward.Policy{Retries: 2},
				})
				if res.Status != status || res.OK() || res.Err != nil || res.Attempts != 1 {
					t.Fatalf("result %+v: want the %d itself, not followed, not retried", res, status)
				}
				if !strings.HasSuffix(res.Header.Get("Location"), "/moved") {
					t.Errorf("Location %q not passed back", res.Header.Get("Location"))
				}
				if hits.Load() != 1 || redirected.Load() != 0 || elsewhere.Load() != before {
					t.Fatalf("redirect followed: origin %d, same-host target %d, other host %d", hits.Load(), redirected.Load(), elsewhere.Load()-before)
				}
			})
		}
	}
}

func TestFaultHugeResponseIsBounded(t *testing.T) {
	const oneGiB = 1 << 30
	for _, framing := range []string{"content-length", "chunked"} {
		t.Run(framing, func(t *testing.T) {
			var written atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if framing == "content-length" {
					w.Header().Set("Content-Length", fmt.Sprint(oneGiB))
				}
				w.WriteHeader(http.StatusOK)
				n, _ := io.CopyN(w, zeros{}, oneGiB)
				written.Store(n)
			}))
			defer srv.Close()
			res := newClient(t, nil).Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: time.Minute})
			// not timed: the bound shows in what was kept and in how much
			// the upstream could write before the client hung up
			if res.Status != http.StatusOK || len(res.Body) != 64<<10 || res.Err != nil || res.TimedOut || res.Attempts != 1 {
				t.Fatalf("status %d, body %d bytes, err %v: want 200 and the 64 KiB bound", res.Status, len(res.Body), res.Err)
			}
			srv.Close() // waits for the handler: the client hung up long before 1 GiB
			if n := written.Load(); n >= oneGiB || n > 64<<20 {
				t.Errorf("upstream wrote %d bytes before the client closed: the read was not bounded", n)
			}
		})
	}

	// The default bound is 1 MiB.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.CopyN(w, zeros{}, oneGiB)
	}))
	defer srv.Close()
	c := forward.NewClient(forward.ClientOptions{})
	defer c.Close()
	res := c.Do(context.Background(), &forward.Request{URL: srv.URL, Body: body, Timeout: 10 * time.Second})
	if res.Status != http.StatusOK || len(res.Body) != forward.DefaultMaxResponseBytes {
		t.Fatalf("default bound: status %d, body %d bytes, want %d", res.Status, len(res.Body), forward.DefaultMaxResponseBytes)
	}
}

func TestFaultHugeResponseHeaders(t *testing.T) {
	// Headers that never end: the transport's header limit stops the read.
	up := newRawUpstream(t, func(c net.Conn) {
		if readRequest(c) != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\n"); err != nil {
			return
		}
		line := "X-Pad: " + strings.Repeat("a", 8<<10) + "\r\n"
		for range 4096 { // 32 MiB of headers
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	// not timed: the header limit, not the (long) attempt timeout, ends it
	res := newClient(t, nil).Do(context.Background(), &forward.Request{URL: up.url(), Body: body, Timeout: time.Minute})
	if res.OK() || res.Status != 0 || res.Err == nil || res.TimedOut {
		t.Fatalf("result %+v: endless headers must fail the attempt on the header limit, not on the timeout", res)
	}
}
