package caddymodule_test

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-webhooks/gateway/internal/natstest"
)

// receiver is a caller's HTTPS callback server on loopback.
type receiver struct {
	*httptest.Server
	pemFile string
	mu      sync.Mutex
	got     []recorded
	respond func(w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rc.mu.Lock()
		rc.got = append(rc.got, recorded{method: r.Method, path: r.URL.Path, rawURI: r.RequestURI, header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	rc.pemFile = filepath.Join(t.TempDir(), "callback-ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.Certificate().Raw})
	if err := os.WriteFile(rc.pemFile, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *receiver) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.got...)
}

// fetch GETs a path of the gateway with an optional API key.
func fetch(t *testing.T, tester *caddytest.Tester, method, path, key string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, gatewayURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	return do(t, tester, req)
}

// replySites: hook "rr" calls back to loopback (allowed, its CA trusted,
// callbacks signed as GitHub does); hook "strict" allows only public
// addresses and calls back with POST.
func replySites(upstream, strictUpstream string, rc *receiver) string {
	return fmt.Sprintf(`
http://localhost:9080 {
	@rr path /rr /rr/result
	webhook_gateway @rr {
		name rr
		auth api_key k3y
		id_from {header.X-Request-Id}
		mode async
		forward %[1]s/work {
			retries 1
			backoff 50ms 50ms
		}
		reply {
			callback {json.webhook_url}
			allow 127.0.0.1
			fetch /rr/result
			retain 1h
			tls_trusted_ca_certs %[2]s
			sign github s3cret-sign
		}
	}
	@brief path /brief /brief/result
	webhook_gateway @brief {
		name brief
		auth api_key k3y
		mode async
		forward %[1]s/work
		reply {
			callback {json.webhook_url}
			allow 127.0.0.1
			method POST
			fetch /brief/result
			retain 1s
			tls_trusted_ca_certs %[2]s
		}
	}
	@strict path /strict /strict/result
	webhook_gateway @strict {
		name strict
		auth api_key k3y
		id_from {header.X-Request-Id}
		mode async
		forward %[3]s/work {
			retries 1
			backoff 50ms 50ms
		}
		reply {
			callback {http.request.header.X-Callback-Url}
			method POST
			fetch /strict/result
		}
	}
}
`, upstream, rc.pemFile, strictUpstream)
}

var secretID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestReplyRoundTrip: accept, the upstream's answer stored, the callback
// with ?id= (query kept, signed, Idempotency-Key), the fetch with the
// hook's auth; the admin API never shows the callback URL or the secret.
func TestReplyRoundTrip(t *testing.T) {
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow app
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("name,size\nbackup-1,42\n"))
	})
	rc := newReceiver(t, nil)
	tester, _ := asyncCaddy(t, "", replySites(up.URL, up.URL, rc))

	cbURL := rc.URL + "/hooks/done?tenant=acme"
	body := fmt.Sprintf(`{"job":"backup","webhook_url":%q}`, cbURL)
	status, _, got := post(t, tester, "/rr", "application/json", http.Header{"X-Api-Key": {"k3y"}, "X-Request-Id": {"rr-1"}}, []byte(body))
	t.Logf("POST /rr %s -> %d %s", body, status, got)
	if status != http.StatusAccepted || !strings.Contains(string(got), `"id":"rr-1"`) || !strings.Contains(string(got), `"queued"`) {
		t.Fatalf("accept: %d %s", status, got)
	}
	waitFor(t, "the callback", func() bool { return len(rc.requests()) > 0 })
	cb := rc.requests()[0]
	t.Logf("callback: %s %s Idempotency-Key=%s Webhook-Attempt=%s X-Hub-Signature-256=%s",
		cb.method, cb.rawURI, cb.header.Get("Idempotency-Key"), cb.header.Get("Webhook-Attempt"), cb.header.Get("X-Hub-Signature-256"))
	if cb.method != http.MethodGet || cb.path != "/hooks/done" {
		t.Fatalf("callback %s %s", cb.method, cb.rawURI)
	}
	q, err := parseQuery(cb.rawURI)
	if err != nil {
		t.Fatal(err)
	}
	secret := q.Get("id")
	if !secretID.MatchString(secret) || q.Get("tenant") != "acme" {
		t.Fatalf("callback query %q: want tenant kept and a 128-bit hex id", cb.rawURI)
	}
	if cb.header.Get("Idempotency-Key") != "rr-1" || cb.header.Get("Webhook-Attempt") != "1" {
		t.Errorf("callback headers %v", cb.header)
	}
	if sig := cb.header.Get("X-Hub-Signature-256"); sig != githubSignature("s3cret-sign", cb.body) {
		t.Errorf("callback signature %q, want GitHub's over the (empty) body", sig)
	}
	if len(up.requests()) != 1 || up.requests()[0].header.Get("Idempotency-Key") != "rr-1" {
		t.Errorf("upstream got %d requests", len(up.requests()))
	}

	// the fetch
	status, _, got = fetch(t, tester, http.MethodGet, "/rr/result?id="+secret, "")
	t.Logf("GET /rr/result?id=<secret> without auth -> %d %s", status, got)
	if status != http.StatusUnauthorized {
		t.Errorf("fetch without auth: %d", status)
	}
	status, hdr, got := fetch(t, tester, http.MethodGet, "/rr/result?id="+secret, "k3y")
	t.Logf("GET /rr/result?id=<secret> -> %d Content-Type=%s Webhook-Upstream-Status=%s %q", status, hdr.Get("Content-Type"), hdr.Get("Webhook-Upstream-Status"), got)
	if status != http.StatusOK || string(got) != "name,size\nbackup-1,42\n" || hdr.Get("Content-Type") != "text/csv; charset=utf-8" || hdr.Get("Webhook-Upstream-Status") != "201" {
		t.Errorf("fetch: %d %v %q", status, hdr, got)
	}
	for _, wrong := range []string{strings.Repeat("0", 32), "rr-1", ""} {
		want := http.StatusNotFound
		if wrong == "" {
			want = http.StatusBadRequest
		}
		status, _, got = fetch(t, tester, http.MethodGet, "/rr/result?id="+wrong, "k3y")
		if status != want {
			t.Errorf("fetch of id %q: %d %s", wrong, status, got)
		}
	}
	status, hdr, _ = fetch(t, tester, http.MethodPost, "/rr/result?id="+secret, "k3y")
	if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET" {
		t.Errorf("POST on the fetch path: %d Allow %q", status, hdr.Get("Allow"))
	}

	// a result is kept for retain (1s on /brief), then the same 404
	status, _, got = post(t, tester, "/brief", "application/json", http.Header{"X-Api-Key": {"k3y"}}, []byte(fmt.Sprintf(`{"webhook_url":%q}`, rc.URL+"/brief")))
	if status != http.StatusAccepted {
		t.Fatalf("accept on /brief: %d %s", status, got)
	}
	var briefSecret string
	var briefCallback recorded
	waitFor(t, "the callback of /brief", func() bool {
		for _, r := range rc.requests() {
			if r.path == "/brief" {
				q, _ := parseQuery(r.rawURI)
				briefSecret = q.Get("id")
				briefCallback = r
				return true
			}
		}
		return false
	})
	// a POST callback carries the event id and the upstream's status, never the secret
	var note struct {
		ID             string `json:"id"`
		UpstreamStatus int    `json:"upstream_status"`
	}
	if briefCallback.method != http.MethodPost || briefCallback.header.Get("Content-Type") != "application/json" || json.Unmarshal(briefCallback.body, &note) != nil || note.UpstreamStatus != http.StatusCreated ||
		note.ID == "" || briefCallback.header.Get("Idempotency-Key") != note.ID || strings.Contains(string(briefCallback.body), briefSecret) {
		t.Errorf("POST callback %s %v %s", briefCallback.method, briefCallback.header, briefCallback.body)
	}
	waitFor(t, "the result of /brief to expire", func() bool {
		status, _, _ := fetch(t, tester, http.MethodGet, "/brief/result?id="+briefSecret, "k3y")
		return status == http.StatusNotFound
	})

	// both records delivered; the admin API never shows the secret (the
	// callback URL is only in the payload the sender sent)
	waitFor(t, "both records delivered", func() bool {
		evs := eventsOf(t, "rr", "rr-1")
		return len(evs) == 2 && evs[0].Status == "delivered" && evs[1].Status == "delivered"
	})
	names := map[string]bool{}
	for _, ev := range eventsOf(t, "rr", "rr-1") {
		names[ev.ActionName] = true
	}
	if !names["0"] || !names["callback"] {
		t.Errorf("action names %v", names)
	}
	for _, path := range []string{"/webhook_gateway/event?hook=rr&id=rr-1", "/webhook_gateway/events?hook=rr"} {
		resp, err := http.Get(adminURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(raw), `"rr-1"`) || strings.Contains(string(raw), secret) || strings.Contains(string(raw), "reply ") {
			t.Errorf("admin %s shows the secret or the stored reply values: %s", path, raw)
		}
	}
}

func parseQuery(rawURI string) (interface{ Get(string) string }, error) {
	req, err := http.NewRequest(http.MethodGet, "https://x"+rawURI, nil)
	if err != nil {
		return nil, err
	}
	return req.URL.Query(), nil
}

// TestReplyRefusedCallbacks: each callback URL rule refuses the request
// with 400 naming the rule, and nothing is queued or sent.
func TestReplyRefusedCallbacks(t *testing.T) {
	up := newUpstream(t, nil)
	rc := newReceiver(t, nil)
	tester, _ := asyncCaddy(t, "", replySites(up.URL, up.URL, rc))
	port := strings.TrimPrefix(rc.URL, "https://127.0.0.1:")
	for i, tc := range []struct{ name, url, want string }{
		{"missing", "", "missing"},
		{"http", "http://hooks.example.com/cb", "https"},
		{"userinfo", "https://user:pw@hooks.example.com/cb", "user information"},
		{"private literal", "https://10.1.2.3/cb", "10.1.2.3"},
		{"loopback literal", "https://127.0.0.1:" + port + "/cb", "127.0.0.1"},
		{"metadata", "https://169.254.169.254/latest/meta-data/", "169.254.169.254"},
		{"mapped", "https://[::ffff:127.0.0.1]:" + port + "/cb", "not a public address"},
		{"unspecified", "https://0.0.0.0:" + port + "/cb", "0.0.0.0"},
		{"localhost", "https://localhost:" + port + "/cb", "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("refused-%d", i)
			hdr := http.Header{"X-Api-Key": {"k3y"}, "X-Request-Id": {id}}
			if tc.url != "" {
				hdr.Set("X-Callback-Url", tc.url)
			}
			status, _, got := post(t, tester, "/strict", "application/json", hdr, []byte(`{}`))
			t.Logf("POST /strict X-Callback-Url: %s -> %d %s", tc.url, status, got)
			var e struct{ Error string }
			if status != http.StatusBadRequest || json.Unmarshal(got, &e) != nil || !strings.Contains(e.Error, tc.want) || !strings.Contains(e.Error, "callback") {
				t.Fatalf("got %d %s, want 400 naming %q", status, got, tc.want)
			}
			if strings.Contains(e.Error, "/cb") || strings.Contains(e.Error, "pw") {
				t.Errorf("error body holds the URL: %s", got)
			}
			// the refusal is in the run log, written in the background;
			// nothing else is stored
			waitFor(t, "the rejected record", func() bool { return len(eventsOf(t, "strict", id)) > 0 })
			for _, ev := range eventsOf(t, "strict", id) {
				if ev.Status != "rejected" {
					t.Errorf("record %s is %s: stored besides the refusal", ev.Key, ev.Status)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(up.requests()) + len(rc.requests()); n != 0 {
		t.Errorf("%d requests sent for refused callbacks", n)
	}
}

// loopbackName finds a host name (not localhost) that this machine's
// resolver maps to a loopback or private address.
func loopbackName(t *testing.T) string {
	t.Helper()
	host, _ := os.Hostname()
	for _, name := range []string{host, "runsc", "vm", "ip6-localhost", "ip6-loopback"} {
		if name == "" || strings.Contains(name, "localhost") && !strings.HasPrefix(name, "ip6-") {
			continue
		}
		addrs, err := net.LookupHost(name)
		if err != nil || len(addrs) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(addrs[0])
		if err == nil && (ip.IsLoopback() || ip.IsPrivate()) {
			return name
		}
	}
	t.Skip("no host name here resolves to a loopback or private address")
	return ""
}

// TestReplyCallbackGuarded: a name that resolves to loopback passes the
// URL check (names are checked when dialling), and the dial refuses it:
// the callback record goes dead with the reason, and nothing reaches the
// receiver. A redirect from an allowed receiver is not followed. A dead
// upstream's result is a 502 whose body names no address.
func TestReplyCallbackGuarded(t *testing.T) {
	up := newUpstream(t, nil)
	var hits sync.Map
	target := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.RequestURI, true)
		w.WriteHeader(http.StatusNoContent)
	})
	redirecting := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/private", http.StatusFound)
	})
	// the redirecting receiver and the target share the test CA
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	_ = dead.Close()
	tester, _ := asyncCaddy(t, "", replySites(deadURL, up.URL, redirecting))

	// a name resolving to loopback
	name := loopbackName(t)
	port := strings.TrimPrefix(target.URL, "https://127.0.0.1:")
	hdr := http.Header{"X-Api-Key": {"k3y"}, "X-Request-Id": {"guard-1"}, "X-Callback-Url": {"https://" + name + ":" + port + "/cb"}}
	status, _, got := post(t, tester, "/strict", "application/json", hdr, []byte(`{}`))
	t.Logf("POST /strict X-Callback-Url: https://%s:%s/cb -> %d %s", name, port, status, got)
	if status != http.StatusAccepted {
		t.Fatalf("accept: %d %s", status, got)
	}
	var cbEvent eventView
	waitFor(t, "the callback record dead", func() bool {
		for _, ev := range eventsOf(t, "strict", "guard-1") {
			if ev.ActionName == "callback" && ev.Status == "dead" {
				cbEvent = ev
				return true
			}
		}
		return false
	})
	t.Logf("callback record: %s attempts %+v", cbEvent.Status, cbEvent.Attempts)
	if len(cbEvent.Attempts) != 2 || !strings.Contains(cbEvent.Attempts[1].Error, "is not public and not allowed") {
		t.Errorf("attempts %+v, want 2 refused at dial with the reason", cbEvent.Attempts)
	}
	for _, at := range cbEvent.Attempts {
		if strings.Contains(at.Error, "id=") || strings.Contains(at.Error, "/cb") {
			t.Errorf("attempt error holds the callback URL: %q", at.Error)
		}
	}

	// a redirect to another address is not followed
	body := fmt.Sprintf(`{"webhook_url":%q}`, redirecting.URL+"/cb")
	status, _, got = post(t, tester, "/rr", "application/json", http.Header{"X-Api-Key": {"k3y"}, "X-Request-Id": {"redirect-1"}}, []byte(body))
	if status != http.StatusAccepted {
		t.Fatalf("accept: %d %s", status, got)
	}
	waitFor(t, "the redirected callback dead", func() bool {
		for _, ev := range eventsOf(t, "rr", "redirect-1") {
			if ev.ActionName == "callback" && ev.Status == "dead" {
				cbEvent = ev
				return true
			}
		}
		return false
	})
	t.Logf("redirected callback record: %s attempts %+v", cbEvent.Status, cbEvent.Attempts)
	if n := len(redirecting.requests()); n != 1 {
		t.Errorf("redirecting receiver got %d requests, want 1", n)
	}
	if len(target.requests()) != 0 {
		t.Errorf("the redirect was followed: %v", target.requests())
	}
	if len(cbEvent.Attempts) != 1 || cbEvent.Attempts[0].Status != http.StatusFound {
		t.Errorf("attempts %+v, want one 302, not retried", cbEvent.Attempts)
	}

	// the upstream of /rr is down: the result is a 502 naming no address
	cb := redirecting.requests()[0]
	q, err := parseQuery(cb.rawURI)
	if err != nil {
		t.Fatal(err)
	}
	status, rh, got := fetch(t, tester, http.MethodGet, "/rr/result?id="+q.Get("id"), "k3y")
	t.Logf("GET /rr/result?id=<secret> -> %d Webhook-Upstream-Status=%s %s", status, rh.Get("Webhook-Upstream-Status"), got)
	if status != http.StatusOK || rh.Get("Webhook-Upstream-Status") != "502" || rh.Get("Content-Type") != "application/json" ||
		!strings.Contains(string(got), "upstream did not answer") || strings.Contains(string(got), "127.0.0.1") {
		t.Errorf("fetch of a dead upstream's result: %d %v %s", status, rh, got)
	}
}

// TestReplyConfigRefused: a reply block that cannot work stops the load
// with a message naming the problem.
func TestReplyConfigRefused(t *testing.T) {
	pemFile := filepath.Join(t.TempDir(), "missing.pem")
	hook := func(mode, actions, reply string) string {
		return fmt.Sprintf("http://localhost:9080 {\n\twebhook_gateway /r {\n\t\t%s\n\t\t%s\n\t\treply {\n%s\n\t\t}\n\t}\n}\n", mode, actions, reply)
	}
	ok := "\t\t\tcallback {json.webhook_url}\n\t\t\tfetch /r/result"
	fwd := "forward http://127.0.0.1:1/x"
	for _, tc := range []struct{ name, config, want string }{
		{"sync", hook("", fwd, ok), "reply needs mode async"},
		{"two actions", hook("mode async", fwd+"\n\t\tforward http://127.0.0.1:2/y", ok), "exactly one action"},
		{"publish", hook("mode async", fwd+"\n\t\tpublish nats://127.0.0.1:4222 {\n\t\t\tsubject s\n\t\t}", ok), "exactly one action"},
		{"no callback", hook("mode async", fwd, "\t\t\tfetch /r/result"), "needs a callback"},
		{"no fetch", hook("mode async", fwd, "\t\t\tcallback {json.webhook_url}"), "needs a fetch path"},
		{"bad allow", hook("mode async", fwd, ok+"\n\t\t\tallow 10.0.0.0/33"), "10.0.0.0/33"},
		{"bad CA file", hook("mode async", fwd, ok+"\n\t\t\ttls_trusted_ca_certs "+pemFile), "missing.pem"},
		{"unknown option", hook("mode async", fwd, ok+"\n\t\t\tcolour red"), `reply: unrecognized option "colour"`},
		{"repeated", hook("mode async", fwd, ok+"\n\t\t\tfetch /other"), "fetch given twice"},
		{"relative fetch", hook("mode async", fwd, "\t\t\tcallback {json.webhook_url}\n\t\t\tfetch result"), "must be a plain path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateCaddyfile(t, pebbleGlobal(t.TempDir(), "")+tc.config)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// the same checks hold for JSON config
	raw := `{"apps":{"webhook_gateway":{"store":{"path":%q}},"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[
		{"handler":"webhook_gateway","mode":"async","forward":[{"url":"http://127.0.0.1:1/x"}],"reply":{"callback":"{json.webhook_url}"}}]}]}}}}}`
	if err := validateJSON(t, fmt.Sprintf(raw, t.TempDir())); err == nil || !strings.Contains(err.Error(), "needs a fetch path") {
		t.Errorf("JSON without fetch: %v", err)
	}
	if err := validateJSON(t, strings.Replace(fmt.Sprintf(raw, t.TempDir()), `"reply":{`, `"reply":{"fetch":"/r/result",`, 1)); err != nil {
		t.Errorf("JSON with fetch: %v", err)
	}
}

// validateJSON provisions a JSON config as a load would, without starting
// it, and returns the error.
func validateJSON(t *testing.T, raw string) error {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// TestReplyNATS: the same exchange with the NATS store keeping events and
// results.
func TestReplyNATS(t *testing.T) {
	ns := natstest.Start(t)
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"export":"ready"}`))
	})
	rc := newReceiver(t, nil)
	config := strings.Replace(globalOptions, "auto_https off", fmt.Sprintf(
		"auto_https off\n\twebhook_gateway {\n\t\tstore nats %s {\n\t\t\tstream replytest\n\t\t\treplicas 1\n\t\t}\n\t}", ns.ClientURL()), 1) +
		fmt.Sprintf(`
http://localhost:9080 {
	@export path /export /export/result
	webhook_gateway @export {
		name export
		auth api_key k3y
		id_from {header.X-Request-Id}
		mode async
		forward %s/export
		reply {
			callback {json.webhook_url}
			allow 127.0.0.1
			fetch /export/result
			tls_trusted_ca_certs %s
		}
	}
}
`, up.URL, rc.pemFile)
	tester := newTester(t)
	tester.InitServer(withPorts(config), "caddyfile")
	t.Cleanup(func() { tester.InitServer(withPorts(globalOptions), "caddyfile") })

	status, _, got := post(t, tester, "/export", "application/json", http.Header{"X-Api-Key": {"k3y"}, "X-Request-Id": {"nats-rr-1"}},
		[]byte(fmt.Sprintf(`{"webhook_url":%q}`, rc.URL+"/export-done")))
	if status != http.StatusAccepted {
		t.Fatalf("accept: %d %s", status, got)
	}
	waitFor(t, "the callback", func() bool { return len(rc.requests()) > 0 })
	cb := rc.requests()[0]
	q, err := parseQuery(cb.rawURI)
	if err != nil {
		t.Fatal(err)
	}
	if cb.path != "/export-done" || !secretID.MatchString(q.Get("id")) || cb.header.Get("Idempotency-Key") != "nats-rr-1" {
		t.Fatalf("callback %s %v", cb.rawURI, cb.header)
	}
	status, hdr, got := fetch(t, tester, http.MethodGet, "/export/result?id="+q.Get("id"), "k3y")
	if status != http.StatusOK || string(got) != `{"export":"ready"}` || hdr.Get("Content-Type") != "application/json" || hdr.Get("Webhook-Upstream-Status") != "202" {
		t.Errorf("fetch: %d %v %s", status, hdr, got)
	}
	if status, _, _ := fetch(t, tester, http.MethodGet, "/export/result?id="+strings.Repeat("a", 32), "k3y"); status != http.StatusNotFound {
		t.Errorf("fetch of an unknown id: %d", status)
	}
}

// TestReplyResultBounds: an upstream that answers after the attempt's
// timeout gives a 504 result; one that answers more than max_size gives a
// 502 result, never a cut body.
func TestReplyResultBounds(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hanging := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	big := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("x", 4096)))
	})
	rc := newReceiver(t, nil)
	hook := func(name, upstream, extra string) string {
		return fmt.Sprintf(`
	@%[1]s path /%[1]s /%[1]s/result
	webhook_gateway @%[1]s {
		name %[1]s
		auth api_key k3y
		%[3]s
		mode async
		forward %[2]s/x {
			timeout 200ms
			retries 0
		}
		reply {
			callback {json.webhook_url}
			allow 127.0.0.1
			fetch /%[1]s/result
			tls_trusted_ca_certs %[4]s
		}
	}`, name, upstream, extra, rc.pemFile)
	}
	tester, _ := asyncCaddy(t, "", "http://localhost:9080 {"+hook("slow", hanging.URL, "")+hook("big", big.URL, "max_size 1KB")+"\n}\n")
	for _, tc := range []struct {
		hook   string
		status string
		want   string
	}{
		{"slow", "504", `{"error":"upstream timed out after 1 attempt","status":504}`},
		{"big", "502", `{"error":"upstream answer larger than max_size after 1 attempt","status":502}`},
	} {
		status, _, got := post(t, tester, "/"+tc.hook, "application/json", http.Header{"X-Api-Key": {"k3y"}}, []byte(fmt.Sprintf(`{"webhook_url":%q}`, rc.URL+"/"+tc.hook)))
		if status != http.StatusAccepted {
			t.Fatalf("accept on /%s: %d %s", tc.hook, status, got)
		}
		var secret string
		waitFor(t, "the callback of /"+tc.hook, func() bool {
			for _, r := range rc.requests() {
				if r.path == "/"+tc.hook {
					q, _ := parseQuery(r.rawURI)
					secret = q.Get("id")
					return true
				}
			}
			return false
		})
		status, hdr, got := fetch(t, tester, http.MethodGet, "/"+tc.hook+"/result?id="+secret, "k3y")
		t.Logf("GET /%s/result?id=<secret> -> %d Webhook-Upstream-Status=%s %s", tc.hook, status, hdr.Get("Webhook-Upstream-Status"), got)
		if status != http.StatusOK || hdr.Get("Webhook-Upstream-Status") != tc.status || strings.TrimSpace(string(got)) != tc.want {
			t.Errorf("fetch of /%s's result: %d %v %s", tc.hook, status, hdr, got)
		}
	}
}
