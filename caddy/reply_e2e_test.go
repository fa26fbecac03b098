package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// callbacks records what a caller's HTTPS callback server received.
type callbacks struct {
	mu  sync.Mutex
	got []*http.Request
}

func (c *callbacks) add(r *http.Request) {
	c.mu.Lock()
	c.got = append(c.got, r)
	c.mu.Unlock()
}

// of returns the callbacks that carried the Idempotency-Key id.
func (c *callbacks) of(id string) []*http.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*http.Request
	for _, r := range c.got {
		if r.Header.Get("Idempotency-Key") == id {
			out = append(out, r)
		}
	}
	return out
}

func (c *callbacks) wait(t *testing.T, id string, within time.Duration) []*http.Request {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if got := c.of(id); len(got) > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no callback for event %s within %s", id, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func replyConfig(port int, dir, upstream, deadUpstream, pemFile string) string {
	return fmt.Sprintf(`{
	admin fd/4
	auto_https off
	persist_config off
	webhook_gateway {
		store pebble %s
	}
}

http://127.0.0.1:%d {
	bind fd/3
	@backup path /backup /webhook
	webhook_gateway @backup {
		name backup
		auth api_key k3y {
			header token
		}
		mode async
		forward %s/backup {
			timeout 10s
			retries 2
			backoff 200ms 1s
		}
		reply {
			callback {json.webhook_url}
			allow 127.0.0.1
			fetch /webhook
			tls_trusted_ca_certs %s
		}
	}
	@broken path /broken /broken/result
	webhook_gateway @broken {
		name broken
		auth api_key k3y {
			header token
		}
		mode async
		forward %s/backup {
			retries 1
			backoff 100ms 100ms
		}
		reply {
			callback {json.webhook_url}
			allow 127.0.0.1
			fetch /broken/result
			tls_trusted_ca_certs %s
		}
	}
}
`, filepath.Join(dir, "events"), port, upstream, pemFile, deadUpstream, pemFile)
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestRequestReply runs the request-reply exchange through the built
// binary: a slow upstream, a caller's loopback HTTPS callback server whose
// certificate is trusted through tls_trusted_ca_certs, the callback with
// ?id=, the fetch; then a SIGKILL between accept and callback; then an
// upstream that never answers. The whole exchange is logged.
func TestRequestReply(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)

	var upstreamCalls atomic.Int64
	inFlight := make(chan string, 16)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		upstreamCalls.Add(1)
		inFlight <- r.Header.Get("Idempotency-Key")
		time.Sleep(2 * time.Second) // a slow backup
		w.Header().Set("Content-Type", "application/vnd.backup+json")
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintf(w, `{"backup":"done","job":%q}`, r.Header.Get("Idempotency-Key"))
	}))
	defer upstream.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	_ = dead.Close()

	cbs := &callbacks{}
	receiver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		cbs.add(r)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	pemFile := filepath.Join(dir, "callback-ca.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: receiver.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	lns := listenLoopback(t, 2)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(replyConfig(lns.port(0), dir, upstream.URL, deadURL, pemFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", lns.port(0))
	client := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path string, body []byte, token bool) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token {
			req.Header.Set("token", "k3y")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		shown := path
		if i := strings.Index(path, "id="); i >= 0 {
			shown = path[:i] + "id=" + path[i+3:i+11] + "..." // the secret, shortened in the log
		}
		t.Logf("caller  -> %s %s %s\ncaller  <- %d Content-Type=%q Webhook-Upstream-Status=%q %s",
			method, shown, body, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Webhook-Upstream-Status"), b)
		return resp.StatusCode, resp.Header, b
	}
	accept := func(path, callbackURL string) string {
		t.Helper()
		status, _, b := call(http.MethodPost, path, fmt.Appendf(nil, `{"dataset":"orders","webhook_url":%q}`, callbackURL), true)
		var acc struct{ ID, Status string }
		if status != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.ID == "" || acc.Status != "queued" {
			t.Fatalf("accept: %d %s", status, b)
		}
		return acc.ID
	}
	secretOf := func(id string, got []*http.Request) string {
		t.Helper()
		var secret string
		for _, r := range got {
			q := r.URL.Query()
			shown := r.URL.RequestURI()
			if sid := q.Get("id"); len(sid) > 8 {
				shown = strings.Replace(shown, sid, sid[:8]+"...", 1) // the secret, shortened in the log
			}
			t.Logf("gateway -> caller callback: %s %s Idempotency-Key=%s Webhook-Attempt=%s",
				r.Method, shown, r.Header.Get("Idempotency-Key"), r.Header.Get("Webhook-Attempt"))
			if r.Method != http.MethodGet || r.URL.Path != "/done" || q.Get("job") != "7" || !hexID.MatchString(q.Get("id")) {
				t.Fatalf("callback %s %s: want GET /done with job=7 kept and a 128-bit id", r.Method, r.URL.RequestURI())
			}
			if secret != "" && q.Get("id") != secret {
				t.Fatalf("two callbacks of event %s carry different ids", id)
			}
			secret = q.Get("id")
		}
		return secret
	}
	cbURL := receiver.URL + "/done?job=7"

	proc := runCaddyOn(t, bin, dir, caddyfile, lns)

	// 1. the exchange
	id := accept("/backup", cbURL)
	secret := secretOf(id, cbs.wait(t, id, 60*time.Second))
	if status, _, _ := call(http.MethodGet, "/webhook?id="+secret, nil, false); status != http.StatusUnauthorized {
		t.Errorf("fetch without the token: %d, want 401", status)
	}
	status, hdr, b := call(http.MethodGet, "/webhook?id="+secret, nil, true)
	if status != http.StatusOK || string(b) != fmt.Sprintf(`{"backup":"done","job":%q}`, id) ||
		hdr.Get("Content-Type") != "application/vnd.backup+json" || hdr.Get("Webhook-Upstream-Status") != "200" {
		t.Fatalf("fetch: %d %v %s", status, hdr, b)
	}
	if status, _, _ := call(http.MethodGet, "/webhook?id="+strings.Repeat("f", 32), nil, true); status != http.StatusNotFound {
		t.Errorf("fetch of an unknown id: %d, want 404", status)
	}

	// 2. SIGKILL while the upstream works on the event: after the restart
	// the callback still comes (at least once, one id) and the fetch works
	for len(inFlight) > 0 {
		<-inFlight
	}
	id = accept("/backup", cbURL)
	select {
	case got := <-inFlight:
		if got != id {
			t.Fatalf("upstream got %s, want %s", got, id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream was not called")
	}
	proc.kill()
	killed := proc
	t.Logf("SIGKILL with event %s accepted, its upstream call in flight, no callback yet (%d)", id, len(cbs.of(id)))
	if len(cbs.of(id)) != 0 {
		t.Fatal("the callback came before the kill: the restart would prove nothing")
	}
	proc = runCaddyOn(t, bin, dir, caddyfile, lns)
	defer proc.stop(t)
	cbs.wait(t, id, 60*time.Second)
	time.Sleep(500 * time.Millisecond) // a second callback, if any, shows now
	got := cbs.of(id)
	secret = secretOf(id, got)
	t.Logf("after the restart: %d callback(s) for %s", len(got), id)
	status, hdr, b = call(http.MethodGet, "/webhook?id="+secret, nil, true)
	if status != http.StatusOK || string(b) != fmt.Sprintf(`{"backup":"done","job":%q}`, id) || hdr.Get("Webhook-Upstream-Status") != "200" {
		t.Fatalf("fetch after the restart: %d %v %s", status, hdr, b)
	}

	// 3. an upstream that never answers: the callback still comes, and its
	// fetch shows the failure
	id = accept("/broken", cbURL)
	secret = secretOf(id, cbs.wait(t, id, 60*time.Second))
	status, hdr, b = call(http.MethodGet, "/broken/result?id="+secret, nil, true)
	if status != http.StatusOK || hdr.Get("Webhook-Upstream-Status") != "502" || !strings.Contains(string(b), "upstream did not answer") ||
		strings.Contains(string(b), "127.0.0.1") {
		t.Fatalf("fetch of a failed result: %d %v %s", status, hdr, b)
	}
	t.Logf("upstream called %d times", upstreamCalls.Load())

	// no log line of either process holds a secret id or the callback URL
	proc.stop(t)
	secrets := []string{}
	cbs.mu.Lock()
	for _, r := range cbs.got {
		secrets = append(secrets, r.URL.Query().Get("id"))
	}
	cbs.mu.Unlock()
	if !strings.Contains(killed.logs.String(), "webhook rejected") {
		t.Fatalf("the first process's log lacks the refused fetch: its output was not captured")
	}
	for i, p := range []*caddyProcess{killed, proc} {
		logs := p.logs.String()
		for _, s := range append(secrets, "/done?job=7", "job=7&id") {
			if strings.Contains(logs, s) {
				t.Errorf("process %d logged %q", i+1, s)
			}
		}
	}
}
