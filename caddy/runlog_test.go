package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stripe/stripe-go/v84/webhook"
)

// runLogConfig has a hook of each mode and a timestamped preset, all
// recorded in the run log; the site on fd/3, the admin endpoint on fd/4
// (whose port is adminPort: the CLI sends it as the Origin).
func runLogConfig(port, adminPort int, store, upstream, apiKey, ghSecret, user, pass, stripeSecret string) string {
	return fmt.Sprintf(`{
	admin fd/4 {
		origins 127.0.0.1:%d
	}
	auto_https off
	persist_config off
	webhook_gateway {
		store pebble %s
	}
}

http://127.0.0.1:%d {
	bind fd/3
	handle /sync {
		webhook_gateway {
			name sync
			auth api_key %s
			max_size 1KB
			reshape {
				set Name {json.name} required
			}
			forward %s/sync
		}
	}
	handle /gate {
		webhook_gateway {
			name gate
			auth github %s
		}
		respond "gated"
	}
	handle /async {
		webhook_gateway {
			name async
			auth basic %s %s
			mode async
			forward %s/async
		}
	}
	handle /stripe {
		webhook_gateway {
			name stripe
			auth stripe %s
			forward %s/stripe
		}
	}
}
`, adminPort, store, port, apiKey, upstream, ghSecret, user, pass, upstream, stripeSecret, upstream)
}

func randomText(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// needles are the forms a secret takes in stored bytes: itself, and its
// base64 at each of the three offsets it may start at inside a longer
// base64 text (JSON encodes []byte fields so).
func needles(secret string) []string {
	out := []string{secret}
	for k := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, k), secret...))
		from, to := (8*k+5)/6, 8*(k+len(secret))/6
		out = append(out, enc[from:to])
	}
	return out
}

// TestRunLogBuiltBinary drives the built Caddy with a request of each mode
// (sync, gate, async) and each reason for a rejection, and checks that the
// admin API shows each with its status and reason, and that no secret or
// credential the test used appears in any answer of the admin API, in any
// file of the store directory, or in any key or value of the store.
func TestRunLogBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer upstream.Close()

	apiKey := randomText(t, "key-")
	ghSecret := randomText(t, "gh-")
	pass := randomText(t, "pw-")
	stripeSecret := randomText(t, "whsec_")
	basicAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+pass))
	secrets := map[string]string{"api key": apiKey, "github secret": ghSecret, "basic password": pass, "basic header": basicAuth, "stripe secret": stripeSecret}

	lns := listenLoopback(t, 2)
	store := filepath.Join(dir, "events")
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(runLogConfig(lns.port(0), lns.port(1), store, upstream.URL, apiKey, ghSecret, "ops", pass, stripeSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := runCaddyOn(t, bin, dir, caddyfile, lns)
	stopped := false
	defer func() {
		if !stopped {
			proc.stop(t)
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", lns.port(0))
	admin := fmt.Sprintf("http://127.0.0.1:%d", lns.port(1))
	client := &http.Client{Timeout: 30 * time.Second}

	type want struct {
		hook, mode, status, reason string
		inbound                    int
	}
	type request struct {
		name, method, path, contentType string
		header                          http.Header
		body                            []byte
		want                            want
	}
	body := []byte(`{"name":"Rex","kind":"dog"}`)
	ghSig := func(secret string, b []byte) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	// Stripe-Signature as the Stripe SDK computes it, at a given time
	stripeSig := func(at time.Time, b []byte) string {
		return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(webhook.ComputeSignature(at, b, stripeSecret)))
	}
	key := http.Header{"X-Api-Key": {apiKey}}
	staleSig := stripeSig(time.Now().Add(-time.Hour), body)
	freshSig := stripeSig(time.Now(), body)
	requests := []request{
		{"sync", "POST", "/sync", "application/json", key, body, want{"sync", "sync", "delivered", "", 200}},
		{"gate", "POST", "/gate", "application/json", http.Header{"X-Hub-Signature-256": {ghSig(ghSecret, body)}, "X-Github-Delivery": {"d-1"}}, body, want{"gate", "gate", "passed", "", 200}},
		{"async", "POST", "/async", "application/json", http.Header{"Authorization": {basicAuth}}, body, want{"async", "async", "delivered", "", 202}},
		{"stripe", "POST", "/stripe", "application/json", http.Header{"Stripe-Signature": {freshSig}}, body, want{"stripe", "sync", "delivered", "", 200}},
		{"method", "GET", "/sync", "application/json", key, nil, want{"sync", "sync", "rejected", "method", 405}},
		{"content type", "POST", "/sync", "text/plain", key, body, want{"sync", "sync", "rejected", "content type", 415}},
		{"size", "POST", "/sync", "application/json", key, []byte(`{"name":"` + strings.Repeat("x", 2000) + `"}`), want{"sync", "sync", "rejected", "too large", 413}},
		{"auth mismatch", "POST", "/sync", "application/json", http.Header{"X-Api-Key": {"not-" + apiKey}}, body, want{"sync", "sync", "rejected", "does not match", 401}},
		{"signature mismatch", "POST", "/gate", "application/json", http.Header{"X-Hub-Signature-256": {ghSig("not-"+ghSecret, body)}}, body, want{"gate", "gate", "rejected", "does not match", 401}},
		{"basic mismatch", "POST", "/async", "application/json", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("ops:not-"+pass))}}, body, want{"async", "async", "rejected", "does not match", 401}},
		{"missing credential", "POST", "/sync", "application/json", nil, body, want{"sync", "sync", "rejected", "missing", 401}},
		{"stale timestamp", "POST", "/stripe", "application/json", http.Header{"Stripe-Signature": {staleSig}}, body, want{"stripe", "sync", "rejected", "timestamp outside tolerance", 401}},
		{"bad JSON", "POST", "/sync", "application/json", key, []byte(`{"name":`), want{"sync", "sync", "rejected", "JSON", 400}},
		{"mapping", "POST", "/sync", "application/json", key, []byte(`{"kind":"cat"}`), want{"sync", "sync", "rejected", "required field", 422}},
	}
	for _, rq := range requests {
		req, err := http.NewRequest(rq.method, base+rq.path, bytes.NewReader(rq.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", rq.contentType)
		req.Header.Set("X-Case", rq.name)
		// a mark found nowhere else, to check that the store scan at the
		// end read this record
		req.Header.Set("X-Mark", caseMark(rq.name))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", rq.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != rq.want.inbound {
			t.Fatalf("%s: answered %d, want %d", rq.name, resp.StatusCode, rq.want.inbound)
		}
	}

	var answers []string // every admin answer, searched for secrets at the end
	get := func(path string, into any) {
		t.Helper()
		resp, err := client.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, b)
		}
		answers = append(answers, string(b))
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	type record struct {
		Key        string              `json:"key"`
		Hook       string              `json:"hook"`
		Mode       string              `json:"mode"`
		Status     string              `json:"status"`
		Inbound    int                 `json:"inbound_status"`
		Reason     string              `json:"reason"`
		Auth       string              `json:"auth"`
		Headers    map[string][]string `json:"headers"`
		Replayable bool                `json:"replayable"`
	}
	var list struct {
		Events []record `json:"events"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		get("/webhook_gateway/events?limit=1000", &list)
		finished := 0
		for _, r := range list.Events {
			if r.Status != "queued" && r.Status != "delivering" {
				finished++
			}
		}
		if len(list.Events) == len(requests) && finished == len(requests) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records (%d finished), want %d", len(list.Events), finished, len(requests))
		}
		time.Sleep(100 * time.Millisecond)
	}
	byCase := map[string]record{}
	for _, r := range list.Events {
		var full record
		get("/webhook_gateway/event?key="+url.QueryEscape(r.Key), &full)
		if len(full.Headers["X-Case"]) != 1 {
			t.Errorf("record %s has no X-Case header: %+v", r.Key, full.Headers)
			continue
		}
		byCase[full.Headers["X-Case"][0]] = full
	}
	for _, rq := range requests {
		r, ok := byCase[rq.name]
		if !ok {
			t.Errorf("%s: no record", rq.name)
			continue
		}
		w := rq.want
		if r.Hook != w.hook || r.Mode != w.mode || r.Status != w.status || r.Inbound != w.inbound || !strings.Contains(r.Reason, w.reason) || (w.reason == "" && r.Reason != "") {
			t.Errorf("%s: %+v, want %+v", rq.name, r, w)
		}
		if w.status != "rejected" && r.Auth == "" {
			t.Errorf("%s: no auth method recorded", rq.name)
		}
		if r.Replayable != (w.status == "delivered") {
			t.Errorf("%s: replayable %v", rq.name, r.Replayable)
		}
		for name, vals := range r.Headers {
			if strings.EqualFold(name, "X-Api-Key") || strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "X-Hub-Signature-256") {
				if len(vals) != 1 || vals[0] != "[redacted]" {
					t.Errorf("%s: header %s shown as %q", rq.name, name, vals)
				}
			}
		}
	}
	// the CLI reads the same with its filters
	out, errOut, code := cli(t, bin, nil, nil, "webhook-gateway", "events", "--address", strings.TrimPrefix(admin, "http://"), "--hook", "sync", "--status", "rejected", "--since", "1h", "--q", "kind")
	var cliList struct {
		Events []record `json:"events"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &cliList) != nil {
		t.Fatalf("events: exit %d\n%s\n%s", code, out, errOut)
	}
	// rejected sync requests whose body was read and has "kind": auth
	// mismatch, missing credential, mapping
	if len(cliList.Events) != 3 {
		t.Errorf("events --hook sync --status rejected --since 1h --q kind: %d records\n%s", len(cliList.Events), out)
	}
	_, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "events", "--address", strings.TrimPrefix(admin, "http://"), "--since", "yesterday")
	if code == 0 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("events --since yesterday: exit %d\n%s", code, errOut)
	}
	var hooks json.RawMessage
	get("/webhook_gateway/hooks", &hooks)
	var byID json.RawMessage
	get("/webhook_gateway/event?id=d-1", &byID)

	for _, a := range answers {
		for what, s := range secrets {
			for _, n := range needles(s) {
				if strings.Contains(a, n) {
					t.Errorf("the admin API shows the %s: %s", what, a)
				}
			}
		}
	}

	// the store directory, once Caddy has closed it: its files, and every
	// key and value Pebble holds (its tables may be compressed)
	proc.stop(t)
	stopped = true
	var files int
	var read bytes.Buffer // all the bytes searched, to check that every record was among them
	err := filepath.WalkDir(store, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		read.Write(b)
		files++
		for what, s := range secrets {
			for _, n := range needles(s) {
				if bytes.Contains(b, []byte(n)) {
					t.Errorf("store file %s holds the %s", path, what)
				}
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("reading the store: %d files, %v", files, err)
	}
	db, err := pebble.Open(store, &pebble.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	iter, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = iter.Close() }()
	for iter.First(); iter.Valid(); iter.Next() {
		read.Write(iter.Key())
		read.Write(iter.Value())
		for what, s := range secrets {
			for _, n := range needles(s) {
				if bytes.Contains(iter.Key(), []byte(n)) || bytes.Contains(iter.Value(), []byte(n)) {
					t.Errorf("store key %q holds the %s", iter.Key(), what)
				}
			}
		}
	}
	// every record was searched: its X-Mark header is in a file read raw
	// (run log segments, Pebble's log) or in a key or value Pebble gave
	for _, rq := range requests {
		if !bytes.Contains(read.Bytes(), []byte(caseMark(rq.name))) {
			t.Errorf("%s: its record is in no store file, key or value searched", rq.name)
		}
	}
}

// caseMark is the X-Mark header of a request of TestRunLogBuiltBinary.
func caseMark(name string) string {
	return "mark-" + strings.ReplaceAll(name, " ", "-") + "-7f3a9c"
}
