package forward_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/forward"
)

// TestResponseTooLarge (finding 10): a body beyond MaxResponseBytes is
// reported, never handed over as if whole; one that fits exactly is not.
func TestResponseTooLarge(t *testing.T) {
	const max = 64 << 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write(bytes.Repeat([]byte("x"), 2*max))
		case "/one-more":
			_, _ = w.Write(bytes.Repeat([]byte("x"), max+1))
		case "/chunked":
			for range 3 {
				_, _ = w.Write(bytes.Repeat([]byte("x"), max/2))
				w.(http.Flusher).Flush()
			}
		default:
			_, _ = w.Write(bytes.Repeat([]byte("y"), max))
		}
	}))
	defer srv.Close()
	c := newClient(t, nil)
	for path, want := range map[string]bool{"/big": true, "/one-more": true, "/chunked": true, "/exact": false} {
		res := c.Do(context.Background(), &forward.Request{URL: srv.URL + path, Policy: forward.Policy{Retries: 2}})
		if res.TooLarge != want || res.Status != 200 || res.Err != nil || len(res.Body) != max || res.Attempts != 1 {
			t.Errorf("%s: TooLarge %v status %d err %v body %d attempts %d; want TooLarge %v, 200, the first %d bytes, 1 attempt",
				path, res.TooLarge, res.Status, res.Err, len(res.Body), res.Attempts, want, max)
		}
	}
}

// TestRequestErrorHidesURL: a URL that cannot be sent is reported without
// the URL, whose query may hold a credential.
func TestRequestErrorHidesURL(t *testing.T) {
	c := newClient(t, nil)
	for _, u := range []string{"http://h.example/%zz?token=url-secret-1", "http://h.example:99999/x?token=url-secret-1", "http://h\x7f.example/?token=url-secret-1"} {
		res := c.Do(context.Background(), &forward.Request{URL: u, Timeout: time.Second, Policy: forward.Policy{Retries: 3}})
		if res.Err == nil {
			t.Errorf("%q: sent", u)
			continue
		}
		if strings.Contains(res.Err.Error(), "url-secret-1") {
			t.Errorf("%q: error shows the URL: %v", u, res.Err)
		}
	}
}

// FuzzRetryAfter: whatever an upstream sends as Retry-After, the wait is
// never negative and never beyond the policy's cap.
func FuzzRetryAfter(f *testing.F) {
	for _, v := range []string{
		"120", "0", "-1", "+5", " 7 ", "1.5", "1e9", "0x10", "99999999999999999999", "9223372036854775807",
		"3153600000", "3153600001", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Mon, 23 Nov 2026 10:00:30 GMT", "", "\x00", "5\r\n6",
	} {
		f.Add(v, uint8(1))
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	exp := forward.Policy{Base: time.Millisecond, Max: 30 * time.Second, Rand: func() float64 { return 0.999 }}
	sched := forward.Policy{Schedule: []time.Duration{5 * time.Second, 5 * time.Minute, 10 * time.Hour}}
	f.Fuzz(func(t *testing.T, v string, n uint8) {
		d, ok := forward.ParseRetryAfter(v, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", v, d, ok)
		}
		if got := exp.Delay(int(n), d); got < 0 || got > exp.Max {
			t.Fatalf("exponential Delay(%d, %v) = %v, beyond [0, %v]", n, d, got, exp.Max)
		}
		if got := sched.Delay(int(n), d); got < 0 || got > 10*time.Hour {
			t.Fatalf("schedule Delay(%d, %v) = %v, beyond [0, 10h]", n, d, got)
		}
	})
}

func TestHeaderNames(t *testing.T) {
	for _, ok := range []string{"X-Api-Key", "x_y", "A1!#$%&'*+-.^_`|~"} {
		if err := forward.CheckHeaderName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "X Bad", "X:Bad", "X\r\nY", "Ü", "X{json.a}", "(x)", "x\x00"} {
		if forward.CheckHeaderName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
		if _, err := forward.NewSigner("hmac", "s", forward.HMACOptions{Header: bad}); err == nil {
			t.Errorf("sign hmac with header %q accepted", bad)
		}
	}
	if _, err := forward.NewSigner("hmac", "s", forward.HMACOptions{Header: "X-Sig", Prefix: "sha256=\r\n"}); err == nil {
		t.Error("sign hmac with a prefix holding CRLF accepted")
	}
}

// TestResponseHeadersBounded: an upstream's response headers are read up
// to 1 MiB, not Go's default 10 MiB; beyond, the attempt fails.
func TestResponseHeadersBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 2 << 20
		if r.URL.Path == "/fits" {
			n = 512 << 10
		}
		w.Header().Set("X-Big", strings.Repeat("h", n))
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := newClient(t, nil)
	if res := c.Do(context.Background(), &forward.Request{URL: srv.URL + "/big"}); res.Err == nil || res.Status != 0 {
		t.Errorf("2 MiB of headers: status %d err %v, want a failed attempt", res.Status, res.Err)
	}
	if res := c.Do(context.Background(), &forward.Request{URL: srv.URL + "/fits"}); !res.OK() || len(res.Header.Get("X-Big")) != 512<<10 {
		t.Errorf("512 KiB of headers: status %d err %v", res.Status, res.Err)
	}
}
