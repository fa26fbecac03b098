package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/caddymodule"
	"github.com/caddy-webhooks/gateway/queue"
)

// runRecords reads every record of hook from the running config's store,
// newest first, with bodies and headers.
func runRecords(t *testing.T, hook string) []*queue.Event {
	t.Helper()
	store := caddymodule.RunningStore()
	if store == nil {
		t.Fatal("the running config has no event store")
	}
	ctx := context.Background()
	var out []*queue.Event
	q := queue.ListQuery{Hook: hook, Limit: 500}
	for {
		page, err := store.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			full, err := store.Get(ctx, ev.Key)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, full)
		}
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

// waitRecords waits until hook has n records and returns them.
func waitRecords(t *testing.T, hook string, n int) []*queue.Event {
	t.Helper()
	var evs []*queue.Event
	waitFor(t, fmt.Sprintf("%d records of %s", n, hook), func() bool {
		evs = runRecords(t, hook)
		return len(evs) >= n
	})
	if len(evs) != n {
		t.Fatalf("%s: %d records, want %d: %s", hook, len(evs), n, describeRecords(evs))
	}
	return evs
}

func describeRecords(evs []*queue.Event) string {
	b, _ := json.MarshalIndent(evs, "", " ")
	return string(b)
}

// byAction orders the records of one request by action.
func byAction(evs []*queue.Event) []*queue.Event {
	out := slices.Clone(evs)
	slices.SortFunc(out, func(a, b *queue.Event) int { return a.Action - b.Action })
	return out
}

const runLogKey = "runlog-key-5f0c8d2e41"

func keyed(extra ...string) http.Header {
	h := http.Header{"X-Api-Key": {runLogKey}}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

// Each mode leaves the records the run log promises: sync one record per
// action with its attempts, gate a passed record, async the stored events
// themselves with the request's fields, and a repeated id a duplicate.
func TestRunLogModes(t *testing.T) {
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /sync {
		name sync-one
		auth api_key %[1]s
		reshape {
			set who {json.name}
		}
		forward %[2]s/one
	}
	webhook_gateway /fan {
		name fan
		auth api_key %[1]s
		forward %[2]s/ok {
			name ok
		}
		forward %[2]s/fail {
			name bad
			retries 1
			backoff 1ms 1ms
		}
	}
	webhook_gateway /retried {
		name retried
		auth api_key %[1]s
		forward %[2]s/fail {
			retries 3
			backoff 1ms 1ms
		}
	}
	webhook_gateway /gate {
		name gate
		auth api_key %[1]s
	}
	respond /gate "passed" 201
	webhook_gateway /async {
		name async
		auth api_key %[1]s
		id_from {http.request.header.X-Id}
		deduplicate
		mode async
		forward %[2]s/async
	}
}
`, runLogKey, up.URL))

	t.Run("sync one action", func(t *testing.T) {
		status, _, b := post(t, tester, "/sync?token=query-secret-1", "application/json", keyed("X-Custom", "yes"), []byte(`{"name":"rex"}`))
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, b)
		}
		ev := waitRecords(t, "sync-one", 1)[0]
		got := up.requests()
		sentID := got[len(got)-1].header.Get("Idempotency-Key")
		if ev.ID != sentID || ev.Mode != "sync" || ev.Status != queue.StatusDelivered || ev.Action != 0 || ev.Auth != "api_key" ||
			ev.Inbound != http.StatusOK || ev.Request != "POST /sync" || ev.RemoteIP != "127.0.0.1" {
			t.Errorf("record: %s (sent id %s)", describeRecords([]*queue.Event{ev}), sentID)
		}
		if string(ev.Body) != `{"who":"rex"}` || string(ev.Payload) != `{"name":"rex"}` || ev.Truncated {
			t.Errorf("body %s payload %s truncated %v", ev.Body, ev.Payload, ev.Truncated)
		}
		if len(ev.Attempts) != 1 || ev.Attempts[0].Status != http.StatusOK || ev.Attempts[0].Error != "" || ev.Attempts[0].Latency <= 0 {
			t.Errorf("attempts %+v", ev.Attempts)
		}
		if !slices.Equal(ev.Headers["X-Api-Key"], []string{"[redacted]"}) || !slices.Equal(ev.Headers["X-Custom"], []string{"yes"}) {
			t.Errorf("headers %v", ev.Headers)
		}
	})

	// a record keeps room for two attempts: more go beyond it
	t.Run("sync one action, four attempts", func(t *testing.T) {
		status, _, b := post(t, tester, "/retried", "application/json", keyed(), []byte(`{"n":4}`))
		if status != http.StatusBadGateway {
			t.Fatalf("%d %s", status, b)
		}
		ev := waitRecords(t, "retried", 1)[0]
		if ev.Status != queue.StatusDead || ev.Inbound != http.StatusBadGateway || len(ev.Attempts) != 4 || string(ev.Body) != `{"n":4}` {
			t.Fatalf("record: %s", describeRecords([]*queue.Event{ev}))
		}
		for i, at := range ev.Attempts {
			if at.Status != http.StatusInternalServerError || at.Error != "upstream answered 500" || at.Latency <= 0 ||
				i > 0 && at.At.Before(ev.Attempts[i-1].At) {
				t.Errorf("attempt %d: %+v", i, at)
			}
		}
	})

	t.Run("sync fan-out", func(t *testing.T) {
		status, _, b := post(t, tester, "/fan", "application/json", keyed(), []byte(`{"n":1}`))
		if status != http.StatusBadGateway {
			t.Fatalf("%d %s", status, b)
		}
		evs := byAction(waitRecords(t, "fan", 2))
		ok, bad := evs[0], evs[1]
		if ok.Status != queue.StatusDelivered || len(ok.Attempts) != 1 || ok.Inbound != http.StatusBadGateway || ok.ID != bad.ID {
			t.Errorf("ok action: %s", describeRecords(evs))
		}
		if bad.Status != queue.StatusDead || bad.Action != 1 || len(bad.Attempts) != 2 || bad.Inbound != http.StatusBadGateway {
			t.Fatalf("failing action: %s", describeRecords(evs))
		}
		for _, at := range bad.Attempts {
			if at.Status != http.StatusInternalServerError || at.Error != "upstream answered 500" {
				t.Errorf("attempt %+v", at)
			}
		}
		if string(bad.Body) != `{"n":1}` || bad.Payload != nil {
			t.Errorf("body %s payload %s: the payload is kept only when it differs from the body", bad.Body, bad.Payload)
		}
	})

	t.Run("gate", func(t *testing.T) {
		status, _, b := post(t, tester, "/gate", "application/json", keyed(), []byte(`{"g":1}`))
		if status != http.StatusCreated {
			t.Fatalf("%d %s", status, b)
		}
		ev := waitRecords(t, "gate", 1)[0]
		if ev.Mode != "gate" || ev.Status != queue.StatusPassed || ev.Action != -1 || ev.Inbound != http.StatusCreated ||
			ev.Auth != "api_key" || string(ev.Payload) != `{"g":1}` {
			t.Errorf("record: %s", describeRecords([]*queue.Event{ev}))
		}
	})

	t.Run("async and duplicate", func(t *testing.T) {
		for range 2 {
			status, _, b := post(t, tester, "/async", "application/json", keyed("X-Id", "evt-log-1"), []byte(`{"a":1}`))
			if status != http.StatusAccepted && status != http.StatusOK {
				t.Fatalf("%d %s", status, b)
			}
		}
		evs := waitRecords(t, "async", 2)
		var stored, dup *queue.Event
		for _, ev := range evs {
			if ev.Status == queue.StatusDuplicate {
				dup = ev
			} else {
				stored = ev
			}
		}
		if stored == nil || dup == nil {
			t.Fatalf("want one event and one duplicate: %s", describeRecords(evs))
		}
		if stored.Mode != "async" || stored.Auth != "api_key" || stored.Inbound != http.StatusAccepted || stored.Request != "POST /async" ||
			stored.RemoteIP != "127.0.0.1" || stored.ID != "evt-log-1" || string(stored.Body) != `{"a":1}` || stored.Payload != nil ||
			!slices.Equal(stored.Headers["X-Api-Key"], []string{"[redacted]"}) {
			t.Errorf("event: %s", describeRecords([]*queue.Event{stored}))
		}
		if dup.ID != "evt-log-1" || dup.Inbound != http.StatusOK || dup.Action != -1 || dup.Mode != "async" {
			t.Errorf("duplicate: %s", describeRecords([]*queue.Event{dup}))
		}
		waitFor(t, "delivery", func() bool {
			return slices.ContainsFunc(runRecords(t, "async"), func(ev *queue.Event) bool { return ev.Status == queue.StatusDelivered })
		})
	})
}

// Every refusal is recorded with its reason: the verifier's words or what
// the sender was told, never body bytes.
func TestRunLogRejections(t *testing.T) {
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /gh {
		name gh
		max_size 1KB
		auth github %q
		reshape {
			set repo {json.repository.name} required
		}
		forward %s/gh
	}
	webhook_gateway /stripe {
		name stripe
		auth stripe %s
		forward %s/stripe
	}
}
`, ghSecret, up.URL, hostileStripe, up.URL))

	const marker = "body-marker-7d1f"
	signed := func(body string) http.Header {
		return http.Header{"X-Hub-Signature-256": {githubSignature(ghSecret, []byte(body))}}
	}
	badJSON := `{"repository": ` + marker + `}`
	cases := []struct {
		name   string
		method string
		ctype  string
		header http.Header
		body   string
		status int
		reason []string
	}{
		{"method", http.MethodPut, "application/json", nil, `{}`, http.StatusMethodNotAllowed, []string{"method not allowed"}},
		{"content type", http.MethodPost, "text/plain", nil, marker, http.StatusUnsupportedMediaType, []string{"unsupported content type"}},
		{"size", http.MethodPost, "application/json", nil, `{"x":"` + strings.Repeat("a", 2000) + `"}`, http.StatusRequestEntityTooLarge, []string{"body too large"}},
		{
			"auth mismatch", http.MethodPost, "application/json",
			http.Header{"X-Hub-Signature-256": {githubSignature("wrong", []byte(`{"m":"`+marker+`"}`))}},
			`{"m":"` + marker + `"}`, http.StatusUnauthorized,
			[]string{"github:", "does not match"},
		},
		{"credential missing", http.MethodPost, "application/json", nil, `{"m":"` + marker + `"}`, http.StatusUnauthorized, []string{"github:", "credential missing"}},
		{"bad JSON", http.MethodPost, "application/json", signed(badJSON), badJSON, http.StatusBadRequest, []string{"invalid JSON at byte 15"}},
		{"mapping", http.MethodPost, "application/json", signed(`{"m":"` + marker + `"}`), `{"m":"` + marker + `"}`, http.StatusUnprocessableEntity, []string{"repository.name"}},
	}
	for i, tc := range cases {
		req, err := http.NewRequest(tc.method, gatewayURL()+"/gh", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = tc.header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Set("Content-Type", tc.ctype)
		if status, _, b := do(t, tester, req); status != tc.status {
			t.Fatalf("%s: %d %s", tc.name, status, b)
		}
		evs := waitRecords(t, "gh", i+1)
		ev := evs[0]
		if ev.Status != queue.StatusRejected || ev.Inbound != tc.status || ev.Action != -1 || ev.Mode != "sync" || ev.ID == "" {
			t.Errorf("%s: %s", tc.name, describeRecords([]*queue.Event{ev}))
		}
		for _, want := range tc.reason {
			if !strings.Contains(ev.Reason, want) {
				t.Errorf("%s: reason %q, want %q in it", tc.name, ev.Reason, want)
			}
		}
		if strings.Contains(ev.Reason, marker) || strings.Contains(ev.Reason, "bytes") {
			t.Errorf("%s: the reason %q tells of the body", tc.name, ev.Reason)
		}
	}
	// the mapping refusal comes after authentication: it names the method
	if ev := runRecords(t, "gh")[0]; ev.Auth != "github" {
		t.Errorf("mapping refusal: auth %q, want github", ev.Auth)
	}

	// a timestamp outside the tolerance, signed as Stripe's SDK signs
	body := []byte(`{"id":"evt_1","type":"charge.succeeded"}`)
	status, _, b := post(t, tester, "/stripe", "application/json", http.Header{"Stripe-Signature": {stripeHeader(time.Now().Add(-time.Hour), body)}}, body)
	if status != http.StatusUnauthorized {
		t.Fatalf("stale stripe: %d %s", status, b)
	}
	ev := waitRecords(t, "stripe", 1)[0]
	if ev.Status != queue.StatusRejected || !strings.Contains(ev.Reason, "timestamp outside tolerance") || ev.Inbound != http.StatusUnauthorized {
		t.Errorf("stale stripe: %s", describeRecords([]*queue.Event{ev}))
	}
	if !slices.Equal(ev.Headers["Stripe-Signature"], []string{"[redacted]"}) {
		t.Errorf("stripe signature header not redacted: %v", ev.Headers)
	}
}

// `log off` writes nothing for sync requests; `log meta` keeps no headers
// and no bodies, and its records are not replayable.
func TestRunLogLevels(t *testing.T) {
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /off {
		name quiet
		log off
		forward %[1]s/off
	}
	webhook_gateway /meta {
		name meta
		log meta
		forward %[1]s/meta
	}
	webhook_gateway /full {
		name full
		forward %[1]s/full
	}
	webhook_gateway /small {
		name small
		log_body 100
		forward %[1]s/small
	}
}
`, up.URL))
	for _, path := range []string{"/off", "/meta", "/off", "/full"} {
		if status, _, b := post(t, tester, path, "application/json", http.Header{"X-Visible": {"v"}}, []byte(`{"level":1}`)); status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, b)
		}
	}
	// one writer, in order: once the last request's record is there, an
	// earlier one of the quiet hook would be too
	waitRecords(t, "full", 1)
	if evs := runRecords(t, "quiet"); len(evs) != 0 {
		t.Errorf("log off recorded: %s", describeRecords(evs))
	}
	ev := waitRecords(t, "meta", 1)[0]
	if ev.Headers != nil || ev.Payload != nil || ev.Body != nil || queue.Replayable(ev) {
		t.Errorf("meta record keeps headers or bodies, or is replayable: %s", describeRecords([]*queue.Event{ev}))
	}
	if ev.Request != "POST /meta" || ev.Status != queue.StatusDelivered || len(ev.Attempts) != 1 || ev.Inbound != http.StatusOK {
		t.Errorf("meta record: %s", describeRecords([]*queue.Event{ev}))
	}
	if err := caddymodule.RunningStore().Replay(context.Background(), ev.Key); err == nil {
		t.Error("a meta sync record, which has no body, was replayed")
	}

	// log_body bounds the body and the headers kept
	big := []byte(`{"pad":"` + strings.Repeat("p", 300) + `"}`)
	if status, _, b := post(t, tester, "/small", "application/json", http.Header{"X-Big": {strings.Repeat("h", 300)}}, big); status != http.StatusOK {
		t.Fatalf("small: %d %s", status, b)
	}
	ev = waitRecords(t, "small", 1)[0]
	if !bytes.Equal(ev.Body, big[:100]) || !ev.Truncated || ev.Payload != nil || queue.Replayable(ev) {
		t.Errorf("body %q payload %q truncated %v", ev.Body, ev.Payload, ev.Truncated)
	}
	if _, ok := ev.Headers["X-Big"]; ok || ev.Headers["Content-Type"] == nil {
		t.Errorf("headers beyond log_body kept, or the first ones not: %v", ev.Headers)
	}
}

// No credential reaches the store: headers are redacted by name (and by
// value where a query credential is repeated), and no file of the store
// directory holds a secret used; the payload, which is not secret, is
// there.
func TestRunLogRedaction(t *testing.T) {
	const (
		headerKey  = "hdr-key-93b1c6e0aa"
		bearerKey  = "bearer-key-1e77f0c2bb"
		queryKey   = "query-key-48a2d9e1cc"
		basicPass  = "basic-pass-0c5e7a3fdd"
		sessionVal = "session-val-66d0b8a1ee"
		cookieVal  = "cookie-val-2f9a4c7e11"
		visible    = "visible-payload-5b3e"
	)
	up := newUpstream(t, nil)
	tester, dir := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /header {
		name header
		auth api_key %[1]s {
			header X-Hook-Key
		}
		log_redact X-Session
		forward %[6]s/h
	}
	webhook_gateway /bearer {
		name bearer
		auth api_key %[2]s {
			bearer
		}
		forward %[6]s/b
	}
	webhook_gateway /query {
		name query
		auth api_key %[3]s {
			query key
		}
		forward %[6]s/q
	}
	webhook_gateway /basic {
		name basic
		auth basic hooker %[4]s
		mode async
		forward %[6]s/basic
	}
	webhook_gateway /gh {
		name gh
		auth github %[5]q
		forward %[6]s/gh
	}
}
`, headerKey, bearerKey, queryKey, basicPass, ghSecret, up.URL))
	body := []byte(`{"note":"` + visible + `"}`)
	ghSig := githubSignature(ghSecret, body)
	requests := []struct {
		path   string
		header http.Header
	}{
		{"/header", http.Header{"X-Hook-Key": {headerKey}, "X-Session": {sessionVal}, "Cookie": {"c=" + cookieVal}}},
		{"/bearer", http.Header{"Authorization": {"Bearer " + bearerKey}}},
		{"/query?key=" + queryKey, http.Header{"X-Original-Uri": {"/query?key=" + queryKey}}},
		{"/basic", basicAuth("hooker", basicPass)},
		{"/gh", http.Header{"X-Hub-Signature-256": {ghSig}}},
	}
	for _, rq := range requests {
		status, _, b := post(t, tester, rq.path, "application/json", rq.header, body)
		if status != http.StatusOK && status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", rq.path, status, b)
		}
	}
	want := map[string][]string{
		"header": {"X-Hook-Key", "X-Session", "Cookie"},
		"bearer": {"Authorization"},
		"query":  {"X-Original-Uri"},
		"basic":  {"Authorization"},
		"gh":     {"X-Hub-Signature-256"},
	}
	for hook, names := range want {
		ev := waitRecords(t, hook, 1)[0]
		for _, name := range names {
			if !slices.Equal(ev.Headers[name], []string{"[redacted]"}) {
				t.Errorf("%s: header %s is %q, want it redacted", hook, name, ev.Headers[name])
			}
		}
		if ev.Request != "POST /"+hook {
			t.Errorf("%s: request %q", hook, ev.Request)
		}
	}
	waitFor(t, "the async event delivered", func() bool { return runRecords(t, "basic")[0].Status == queue.StatusDelivered })

	// the config without the app closes the store; then every file is read
	tester.InitServer(withPorts(globalOptions), "caddyfile")
	secrets := []string{
		headerKey, bearerKey, queryKey, basicPass, sessionVal, cookieVal, ghSig,
		base64.StdEncoding.EncodeToString([]byte("hooker:" + basicPass)),
	}
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(data, []byte(visible))
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds the credential %q", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no file of the store holds the payload: the scan for credentials would prove nothing")
	}
}

// The tokens of an issued hook are its path: the record's request has
// them replaced, and no field of any record holds them.
func TestRunLogIssuedTokens(t *testing.T) {
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	handle /wh/config* {
		webhook_gateway_tokens {
			issuer   hooks
			tenant   {http.request.header.X-Tenant}
			hook_url http://{http.request.hostport}/wh/{api_token}/{token}
		}
	}
	handle /wh/* {
		webhook_gateway {
			name issued
			auth issued hooks {path.1} {path.2}
			forward %s/issued/{path.1}
		}
	}
}
`, up.URL))
	hook := createHook(t, tester, "/wh/config", http.Header{"X-Tenant": {"acme"}}, `{"datasource":"github","event":"push"}`)
	path := hookPath(t, hook)
	status, _, b := post(t, tester, path, "application/json", http.Header{"X-Forwarded-Uri": {path}}, []byte(`{"a":1}`))
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, b)
	}
	// a wrong token is refused and recorded without the tokens presented
	wrong := "/wh/" + hook.APIToken + "/" + strings.Repeat("0", 40)
	if status, _, b := post(t, tester, wrong, "application/json", nil, []byte(`{"a":2}`)); status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %s", status, b)
	}
	evs := waitRecords(t, "issued", 2)
	if got := up.requests(); len(got) != 1 || got[0].path != "/issued/"+hook.APIToken {
		t.Fatalf("upstream saw %+v", got)
	}
	for _, ev := range evs {
		if ev.Request != "POST /wh/[redacted]/[redacted]" {
			t.Errorf("request %q", ev.Request)
		}
		raw, _ := json.Marshal(ev)
		for _, tok := range []string{hook.APIToken, hook.Token} {
			if bytes.Contains(raw, []byte(tok)) {
				t.Errorf("a record holds a token: %s", raw)
			}
		}
	}
}

// log_max keeps the newest records of a hook.
func TestRunLogMax(t *testing.T) {
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /capped {
		name capped
		log_max 3
		id_from {http.request.header.X-Id}
		forward %s/capped
	}
}
`, up.URL))
	for i := 1; i <= 6; i++ {
		if status, _, b := post(t, tester, "/capped", "application/json", http.Header{"X-Id": {fmt.Sprintf("n%d", i)}}, []byte(`{}`)); status != http.StatusOK {
			t.Fatalf("%d %s", status, b)
		}
	}
	var ids []string
	waitFor(t, "the three newest records only", func() bool {
		ids = ids[:0]
		for _, ev := range runRecords(t, "capped") {
			ids = append(ids, ev.ID)
		}
		return slices.Equal(ids, []string{"n6", "n5", "n4"})
	})
}

// When the recorder cannot keep up, records are dropped and counted, and
// requests are not held up.
func TestRunLogDropped(t *testing.T) {
	gate := make(chan struct{})
	restore := caddymodule.SetRunLogQueue(1, gate)
	t.Cleanup(restore)
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /dropping {
		name dropping
		forward %s/d
	}
}
`, up.URL))
	const sample = `caddy_webhook_gateway_log_dropped_total{hook="dropping"}`
	before := metricValue(t, sample)
	const sent = 6
	for range sent {
		if status, _, b := post(t, tester, "/dropping", "application/json", nil, []byte(`{}`)); status != http.StatusOK {
			t.Fatalf("%d %s", status, b)
		}
	}
	// the writer holds at most one record, the queue one more
	dropped := int(metricValue(t, sample) - before)
	if dropped < sent-2 {
		t.Fatalf("dropped %d of %d records with room for 2", dropped, sent)
	}
	close(gate)
	waitRecords(t, "dropping", sent-dropped)
}
