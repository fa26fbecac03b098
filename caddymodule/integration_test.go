package caddymodule_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	// the module under test and the standard handlers it is combined with
	_ "github.com/caddy-webhooks/gateway"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const ghSecret = "It's a Secret to Everybody"

// globalOptions keeps the test Caddy on loopback, plain HTTP, quick to
// reload. Its ports are replaced with free ones (withPorts).
const globalOptions = `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	auto_https off
}
`

// githubSignature signs as GitHub documents it: "sha256=" + hex of
// HMAC-SHA256(secret, body). Written here, independent of verify.
func githubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// recorded is one request an upstream received.
type recorded struct {
	method string
	path   string
	rawURI string
	header http.Header
	body   []byte
	at     time.Time
}

// upstream is a real HTTP server on loopback that records what reaches it.
// respond decides the answer of the n-th request (1-based).
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	got     []recorded
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newUpstream(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *upstream {
	t.Helper()
	u := &upstream{respond: respond}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, recorded{method: r.Method, path: r.URL.Path, rawURI: r.RequestURI, header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(u.got)
		u.mu.Unlock()
		if u.respond != nil {
			u.respond(n, w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.got...)
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// post sends a request to the gateway and returns status, headers, body.
func post(t *testing.T, tester *caddytest.Tester, path, contentType string, header http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d%s", gatewayPort, path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, tester, req)
}

func do(t *testing.T, tester *caddytest.Tester, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := tester.Client.Do(req)
	if err != nil && cutByReload(err) && req.GetBody != nil {
		// Each test loads its config on the same port. Caddy stops the
		// previous config's server after the load returns "confident*
		// that the old servers are no longer accepting new connections
		// (* the scheduler might still pause them right before calling
		// Shutdown())": on a busy machine the old server can accept
		// this connection and then close it unanswered (grace_period
		// 1ns). Such a request was never answered; send it once more.
		t.Logf("%s %s: %v; sent again (cut by the previous config's shutdown)", req.Method, req.URL, err)
		time.Sleep(50 * time.Millisecond)
		if req.Body, err = req.GetBody(); err != nil {
			t.Fatal(err)
		}
		resp, err = tester.Client.Do(req)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// cutByReload: the connection was closed before any answer (EOF or reset).
func cutByReload(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func startCaddy(t *testing.T, sites string) *caddytest.Tester {
	t.Helper()
	tester := newTester(t)
	tester.InitServer(withPorts(globalOptions+sites), "caddyfile")
	return tester
}

func TestGateInFrontOfUpstream(t *testing.T) {
	app := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /github {
		auth github %q
	}
	webhook_gateway /form {
		form_payload
		auth github %q
	}
	webhook_gateway /basic {
		auth basic hook s3cret-pass
	}
	webhook_gateway /small {
		max_size 64B
		auth api_key k1 k2
	}
	webhook_gateway /reshaped {
		auth api_key k1
		reshape {
			set Name {json.petname} required
		}
	}
	webhook_gateway /any {
		methods POST PUT
		content_type application/json application/vnd.example+json
		auth api_key k1
	}
	reverse_proxy %s {
		header_up X-Event-Id {http.webhook_gateway.id}
		header_up X-Auth {http.webhook_gateway.auth}
		header_up X-Repo {http.webhook_gateway.json.repository.full_name}
	}
}
`, ghSecret, ghSecret, app.addr()))

	body := []byte(`{"action":"opened","repository":{"full_name":"octo/hello"},"note":"<>&\u2028 caf\u00e9"}`)
	sig := githubSignature(ghSecret, body)

	// accepted: reaches the app byte for byte, with placeholders
	status, _, _ := post(t, tester, "/github", "application/json", http.Header{
		"X-Hub-Signature-256": {sig},
		"X-Github-Delivery":   {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
	}, body)
	if status != http.StatusOK {
		t.Fatalf("valid GitHub delivery: status %d, want 200", status)
	}
	got := app.requests()
	if len(got) != 1 {
		t.Fatalf("app saw %d requests, want 1", len(got))
	}
	if !bytes.Equal(got[0].body, body) {
		t.Errorf("app got body %q, want the exact bytes sent %q", got[0].body, body)
	}
	if cl := got[0].header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
		t.Errorf("app got Content-Length %q, want %d", cl, len(body))
	}
	if id := got[0].header.Get("X-Event-Id"); id != "72d3162e-cc78-11e3-81ab-4c9367dc0958" {
		t.Errorf("event id placeholder = %q, want the X-GitHub-Delivery value", id)
	}
	if a := got[0].header.Get("X-Auth"); a != "github" {
		t.Errorf("auth placeholder = %q, want github", a)
	}
	if repo := got[0].header.Get("X-Repo"); repo != "octo/hello" {
		t.Errorf("json placeholder = %q, want octo/hello", repo)
	}

	// form_payload: signature over the raw form bytes, app gets the form
	form := []byte("payload=" + strings.ReplaceAll(string(body), "&", "%26"))
	status, _, respBody := post(t, tester, "/form", "application/x-www-form-urlencoded", http.Header{
		"X-Hub-Signature-256": {githubSignature(ghSecret, form)},
	}, form)
	if status != http.StatusOK {
		t.Fatalf("form payload: status %d (%s), want 200", status, respBody)
	}
	if got := app.requests(); !bytes.Equal(got[len(got)-1].body, form) {
		t.Errorf("form payload: app got %q, want the raw form", got[len(got)-1].body)
	}

	// basic auth, an API key in a second place, a UUIDv7 id when there is no delivery header
	req, _ := http.NewRequest(http.MethodPost, gatewayURL()+"/basic", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.SetBasicAuth("hook", "s3cret-pass")
	if status, _, b := do(t, tester, req); status != http.StatusOK {
		t.Fatalf("basic auth: status %d (%s)", status, b)
	}
	if id := app.requests()[len(app.requests())-1].header.Get("X-Event-Id"); len(id) != 36 || id[14] != '7' {
		t.Errorf("generated id %q is not a UUIDv7", id)
	}
	if status, _, b := post(t, tester, "/any", "application/vnd.example+json", http.Header{"X-Api-Key": {"k1"}}, []byte(`[1,2]`)); status != http.StatusOK {
		t.Fatalf("configured content type: status %d (%s)", status, b)
	}

	// reshaped body in gate mode
	if status, _, b := post(t, tester, "/reshaped", "application/json", http.Header{"X-Api-Key": {"k1"}}, []byte(`{"petname":"Gromit"}`)); status != http.StatusOK {
		t.Fatalf("reshape gate: status %d (%s)", status, b)
	}
	last := app.requests()[len(app.requests())-1]
	if string(last.body) != `{"Name":"Gromit"}` || last.header.Get("Content-Length") != "17" {
		t.Errorf("reshape gate: app got %q (Content-Length %s)", last.body, last.header.Get("Content-Length"))
	}

	seen := len(app.requests())

	big := []byte(`{"pad":"` + strings.Repeat("x", 100) + `"}`)
	rejections := []struct {
		name       string
		method     string
		path       string
		ctype      string
		header     http.Header
		body       []byte
		chunked    bool
		wantStatus int
		wantHeader [2]string
		wantInBody string
	}{
		{name: "GET", method: "GET", path: "/github", wantStatus: 405, wantHeader: [2]string{"Allow", "POST"}},
		{name: "PATCH not in methods", method: "PATCH", path: "/any", ctype: "application/json", body: []byte(`{}`), header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 405, wantHeader: [2]string{"Allow", "POST, PUT"}},
		{name: "text/plain", path: "/github", ctype: "text/plain", body: body, header: http.Header{"X-Hub-Signature-256": {sig}}, wantStatus: 415, wantHeader: [2]string{"Accept-Post", "application/json, application/*+json"}},
		{name: "no content type", path: "/github", body: body, header: http.Header{"X-Hub-Signature-256": {sig}}, wantStatus: 415},
		{name: "latin1 charset", path: "/github", ctype: "application/json; charset=iso-8859-1", body: body, header: http.Header{"X-Hub-Signature-256": {sig}}, wantStatus: 415},
		{name: "form without form_payload", path: "/github", ctype: "application/x-www-form-urlencoded", body: form, header: http.Header{"X-Hub-Signature-256": {githubSignature(ghSecret, form)}}, wantStatus: 415},
		{name: "too large by Content-Length", path: "/small", ctype: "application/json", body: big, header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 413},
		{name: "too large chunked", path: "/small", ctype: "application/json", body: big, chunked: true, header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 413},
		{name: "bad signature", path: "/github", ctype: "application/json", body: body, header: http.Header{"X-Hub-Signature-256": {githubSignature("wrong", body)}}, wantStatus: 401},
		{name: "tampered body", path: "/github", ctype: "application/json", body: bytes.Replace(body, []byte("opened"), []byte("closed"), 1), header: http.Header{"X-Hub-Signature-256": {sig}}, wantStatus: 401},
		{name: "missing signature", path: "/github", ctype: "application/json", body: body, wantStatus: 401},
		{name: "wrong basic password", path: "/basic", ctype: "application/json", body: []byte(`{}`), header: http.Header{"Authorization": {"Basic aG9vazp3cm9uZw=="}}, wantStatus: 401, wantHeader: [2]string{"WWW-Authenticate", `Basic realm="webhook_gateway"`}},
		{name: "unknown api key", path: "/any", ctype: "application/json", body: []byte(`{}`), header: http.Header{"X-Api-Key": {"k3"}}, wantStatus: 401},
		{name: "invalid JSON", path: "/any", ctype: "application/json", body: []byte(`{"a": tru}`), header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 400, wantInBody: "byte"},
		{name: "trailing garbage", path: "/any", ctype: "application/json", body: []byte(`{"a":1} x`), header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 400},
		{name: "empty body", path: "/any", ctype: "application/json", header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 400},
		{name: "required source missing", path: "/reshaped", ctype: "application/json", body: []byte(`{"other":1}`), header: http.Header{"X-Api-Key": {"k1"}}, wantStatus: 422, wantInBody: "petname"},
	}
	for _, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			var rd io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				rd = io.MultiReader(rd) // unknown length: sent chunked
			}
			req, _ := http.NewRequest(method, gatewayURL()+tc.path, rd)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			status, hdr, b := do(t, tester, req)
			if status != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", status, b, tc.wantStatus)
			}
			if tc.wantHeader[0] != "" && hdr.Get(tc.wantHeader[0]) != tc.wantHeader[1] {
				t.Errorf("%s = %q, want %q", tc.wantHeader[0], hdr.Get(tc.wantHeader[0]), tc.wantHeader[1])
			}
			var e struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Status != tc.wantStatus || e.Error == "" {
				t.Errorf("error body %q is not {\"error\",\"status\":%d}", b, tc.wantStatus)
			}
			if !strings.Contains(e.Error, tc.wantInBody) {
				t.Errorf("error %q does not mention %q", e.Error, tc.wantInBody)
			}
			if strings.Contains(string(b), ghSecret) || strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "k1") {
				t.Errorf("error body leaks a secret: %s", b)
			}
		})
	}
	if n := len(app.requests()); n != seen {
		t.Fatalf("rejected requests reached the app: %d new requests", n-seen)
	}
}

func TestRejectionsGoToHandleErrors(t *testing.T) {
	app := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway {
		auth api_key k1
	}
	reverse_proxy %s
	handle_errors {
		respond "custom {err.status_code}: {err.message}" {err.status_code}
	}
}
`, app.addr()))
	status, _, b := post(t, tester, "/", "application/json", http.Header{"X-Api-Key": {"nope"}}, []byte(`{}`))
	if status != 401 || string(b) != "custom 401: unauthorized" {
		t.Fatalf("got %d %q, want handle_errors to answer 401", status, b)
	}
	if len(app.requests()) != 0 {
		t.Fatal("rejected request reached the app")
	}
}

// TestLyingContentLength sends a Content-Length longer than the body and
// hangs up: nothing reaches the app.
func TestLyingContentLength(t *testing.T) {
	app := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway {
		auth api_key k1
	}
	reverse_proxy %s
}
`, app.addr()))
	_ = tester
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gatewayPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/json\r\nX-Api-Key: k1\r\nContent-Length: 100\r\n\r\n{\"a\":1}")
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("short body: no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("short body: status %d, want 400", resp.StatusCode)
	}
	// a sentinel through the same route, after the answer to the short
	// body: when it has reached the app, a forward of the short body that
	// was still on its way would have reached it first
	status, _, body := post(t, tester, "/", "application/json", http.Header{"X-Api-Key": {"k1"}}, []byte(`{"sentinel":true}`))
	if status != http.StatusOK {
		t.Fatalf("sentinel: %d %s", status, body)
	}
	got := app.requests()
	if len(got) != 1 || string(got[0].body) != `{"sentinel":true}` {
		for _, r := range got {
			t.Logf("app received %q", r.body)
		}
		t.Fatalf("the app received %d requests, want only the sentinel: a truncated body reached it", len(got))
	}
}
