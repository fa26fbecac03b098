package caddymodule_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// validateCaddyfile adapts a config and provisions it as a load would,
// without starting it (caddy validate), and returns the error.
func validateCaddyfile(t *testing.T, config string) error {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	raw, _, err := adapter.Adapt([]byte(withPorts(config)), nil)
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// loadCaddyfile adapts and loads a config into the running Caddy and
// returns the load error.
func loadCaddyfile(t *testing.T, config string) error {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, _, err := adapter.Adapt([]byte(withPorts(config)), nil)
	if err != nil {
		return err
	}
	return caddy.Load(cfg, true)
}

// Defect: hooks without a name in two handle blocks were both "default",
// and background delivery of one used the other's signer. Now the config
// is refused, naming the name; with names, each is signed with its own
// secret.
func TestSameNamedHooksRefused(t *testing.T) {
	upA := newUpstream(t, nil)
	upB := newUpstream(t, nil)
	sites := func(nameA, nameB string) string {
		return fmt.Sprintf(`
http://localhost:9080 {
	handle /a {
		webhook_gateway {
			%s
			auth api_key k
			mode async
			forward %s/a {
				sign github secretA
			}
		}
	}
	handle /b {
		webhook_gateway {
			%s
			auth api_key k
			mode async
			forward %s/b {
				sign github secretB
			}
		}
	}
}
`, nameA, upA.URL, nameB, upB.URL)
	}
	tester, dir := asyncCaddy(t, "", sites("name a", "name b"))

	clash := pebbleGlobal(dir, "") + sites("", "")
	err := validateCaddyfile(t, clash)
	if err == nil {
		t.Fatal("two differently configured hooks named default were loaded")
	}
	if !strings.Contains(err.Error(), `named "default"`) || !strings.Contains(err.Error(), "`name`") {
		t.Errorf("error does not name the name and the fix: %v", err)
	}
	// sync hooks too: their metrics and logs would mix
	syncClash := strings.ReplaceAll(clash, "mode async", "mode sync")
	if err := validateCaddyfile(t, syncClash); err == nil || !strings.Contains(err.Error(), `named "default"`) {
		t.Errorf("sync hooks sharing a name: %v", err)
	}
	// the same config twice under one name is fine (one hook on two sites)
	hook := "\t\twebhook_gateway {\n\t\t\tauth api_key k\n\t\t\tmode async\n\t\t\tforward " + upA.URL + "/a\n\t\t}\n"
	same := pebbleGlobal(dir, "") +
		"http://localhost:9080 {\n\thandle /one {\n" + hook + "\t}\n\thandle /two {\n" + hook + "\t}\n}\n"
	if err := validateCaddyfile(t, same); err != nil {
		t.Errorf("identical hooks sharing a name: %v", err)
	}

	// the named config is still running and signs each hook's events with
	// its own secret (checked with HMAC-SHA256 as GitHub documents it)
	for _, c := range []struct {
		path, secret string
		up           *upstream
	}{{"/a", "secretA", upA}, {"/b", "secretB", upB}} {
		body := []byte(`{"hook":"` + c.path + `"}`)
		if status, _, b := post(t, tester, c.path, "application/json", http.Header{"X-Api-Key": {"k"}}, body); status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", c.path, status, b)
		}
		waitFor(t, "delivery of "+c.path, func() bool { return len(c.up.requests()) == 1 })
		got := c.up.requests()[0]
		if sig := got.header.Get("X-Hub-Signature-256"); sig != githubSignature(c.secret, body) {
			t.Errorf("%s signed %q, want the signature with %s", c.path, sig, c.secret)
		}
	}
}

// Defect: a re-sent id overwrote an event in flight, which was then marked
// delivered without being sent. Now each is its own record and both are
// delivered, with the same Idempotency-Key.
func TestResentIDDeliveredAsNewEvent(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-release // the first delivery is slow
		}
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	tester, _ := asyncCaddy(t, "\t\tworkers 1", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /orders {
		auth api_key k
		id_from {header.X-Request-Id}
		mode async
		forward %s/orders
	}
}
`, up.URL))
	hdr := http.Header{"X-Api-Key": {"k"}, "X-Request-Id": {"order-1"}}
	if status, _, b := post(t, tester, "/orders", "application/json", hdr, []byte(`{"v":1}`)); status != http.StatusAccepted {
		t.Fatalf("v1: %d %s", status, b)
	}
	waitFor(t, "the first delivery to start", func() bool { return len(up.requests()) == 1 })
	if status, _, b := post(t, tester, "/orders", "application/json", hdr, []byte(`{"v":2}`)); status != http.StatusAccepted {
		t.Fatalf("v2: %d %s", status, b)
	}
	once.Do(func() { close(release) })
	waitFor(t, "both deliveries", func() bool { return len(up.requests()) == 2 })
	var bodies []string
	for _, r := range up.requests() {
		bodies = append(bodies, string(r.body))
		if r.header.Get("Idempotency-Key") != "order-1" {
			t.Errorf("Idempotency-Key %q", r.header.Get("Idempotency-Key"))
		}
	}
	slices.Sort(bodies)
	if !slices.Equal(bodies, []string{`{"v":1}`, `{"v":2}`}) {
		t.Errorf("upstream got %v", bodies)
	}
	var evs []eventView
	waitFor(t, "both delivered in the run log", func() bool {
		evs = eventsOf(t, "orders", "order-1")
		return len(evs) == 2 && evs[0].Status == "delivered" && evs[1].Status == "delivered"
	})
	if evs[0].Key == evs[1].Key || string(evs[0].Payload) != `{"v":2}` || string(evs[1].Payload) != `{"v":1}` {
		t.Errorf("records %+v", evs)
	}
	for _, ev := range evs {
		if len(ev.Attempts) != 1 || ev.Attempts[0].Status != 200 {
			t.Errorf("record %s attempts %+v", ev.Key, ev.Attempts)
		}
	}
}

// Defect: events of a removed hook were retried every 2 s forever, each
// deferral recorded as an attempt. Now deferrals are not attempts, they
// back off, and after orphan_after the event is dead with the reason.
func TestOrphanedEventGoesDead(t *testing.T) {
	var healthy atomic.Bool
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	withHook := fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /gone {
		auth api_key k
		id_from {header.X-Event-Id}
		mode async
		forward %s/gone {
			retries 5
			backoff 1s 1s
		}
	}
	respond /other 204
}
`, up.URL)
	tester, dir := asyncCaddy(t, "\t\torphan_after 3s", withHook)
	if status, _, b := post(t, tester, "/gone", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"orphan-1"}}, []byte(`{}`)); status != http.StatusAccepted {
		t.Fatalf("accept: %d %s", status, b)
	}
	waitFor(t, "the first attempt", func() bool { return len(up.requests()) == 1 })

	// the hook is removed by a reload (same store)
	without := pebbleGlobal(dir, "\t\torphan_after 3s") + `
http://localhost:9080 {
	respond /other 204
}
`
	if err := loadCaddyfile(t, without); err != nil {
		t.Fatal(err)
	}
	healthy.Store(true) // no handler may deliver it any more, even so
	var ev eventView
	waitFor(t, "the orphaned event to go dead", func() bool {
		evs := eventsOf(t, "gone", "orphan-1")
		if len(evs) == 1 {
			ev = evs[0]
		}
		return ev.Status == "dead"
	})
	if ev.Deferrals < 1 {
		t.Errorf("no deferral recorded: %+v", ev)
	}
	// one real attempt (503), then the reason it was given up; deferrals
	// added no attempts
	if len(ev.Attempts) != 2 || ev.Attempts[0].Status != 503 || ev.Attempts[1].Status != 0 ||
		!strings.Contains(ev.Attempts[1].Error, `no hook "gone"`) || !strings.Contains(ev.Attempts[1].Error, "given up") {
		t.Errorf("attempts %+v", ev.Attempts)
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("the removed hook's upstream got %d requests", n)
	}
}

// standardSign signs as the Standard Webhooks spec (and Svix) documents:
// base64 HMAC-SHA256 over "<id>.<timestamp>.<body>" with the base64 key
// after "whsec_". Written here, independent of verify.
func standardSign(secret, id string, ts int64, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	_, _ = fmt.Fprintf(m, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Defect: the event id did not read svix-id, so deduplicate never matched
// a Svix sender's retries (Clerk, Resend, Svix) and Idempotency-Key
// changed between them.
func TestSvixRetriesDeduplicated(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a svix signing secret, 32 bytes!"))
	up := newUpstream(t, nil)
	sites := ""
	for _, preset := range []string{"svix", "clerk", "resend"} {
		sites += fmt.Sprintf(`
	webhook_gateway /%s {
		auth %s %s
		deduplicate
		mode async
		forward %s/%s
	}`, preset, preset, secret, up.URL, preset)
	}
	tester, _ := asyncCaddy(t, "", "http://localhost:9080 {"+sites+"\n}\n")
	for i, preset := range []string{"svix", "clerk", "resend"} {
		id := "msg_" + preset
		body := []byte(`{"type":"user.created","n":` + strconv.Itoa(i) + `}`)
		for try := range 2 {
			ts := time.Now().Unix()
			hdr := http.Header{"Svix-Id": {id}, "Svix-Timestamp": {strconv.FormatInt(ts, 10)}, "Svix-Signature": {standardSign(secret, id, ts, body)}}
			status, _, b := post(t, tester, "/"+preset, "application/json", hdr, body)
			want := http.StatusAccepted
			if try == 1 {
				want = http.StatusOK
			}
			if status != want || (try == 1 && !strings.Contains(string(b), `"duplicate"`)) {
				t.Fatalf("%s try %d: %d %s", preset, try+1, status, b)
			}
		}
	}
	// a sentinel after the duplicates: once it is delivered, anything
	// forwarded before it has arrived too
	ts := time.Now().Unix()
	sentinel := []byte(`{"sentinel":true}`)
	hdr := http.Header{"Svix-Id": {"msg_sentinel"}, "Svix-Timestamp": {strconv.FormatInt(ts, 10)}, "Svix-Signature": {standardSign(secret, "msg_sentinel", ts, sentinel)}}
	if status, _, b := post(t, tester, "/svix", "application/json", hdr, sentinel); status != http.StatusAccepted {
		t.Fatalf("sentinel: %d %s", status, b)
	}
	waitFor(t, "the sentinel", func() bool {
		return slices.ContainsFunc(up.requests(), func(r recorded) bool { return bytes.Equal(r.body, sentinel) })
	})
	waitFor(t, "the three events", func() bool { return len(up.requests()) == 4 })
	for _, r := range up.requests() {
		if want := "msg_" + strings.TrimPrefix(r.path, "/"); r.header.Get("Idempotency-Key") != want && !bytes.Equal(r.body, sentinel) {
			t.Errorf("%s: Idempotency-Key %q, want %q", r.path, r.header.Get("Idempotency-Key"), want)
		}
	}
}

// Defect: event E's second action was stored under E.1, the key of event
// E.1's first action, so with deduplicate E.1 was refused as a duplicate
// and never delivered.
func TestStoreKeysCannotCollide(t *testing.T) {
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /fan {
		auth api_key k
		id_from {header.X-Event-Id}
		deduplicate
		mode async
		forward %s/first
		forward %s/second
	}
}
`, up.URL, up.URL))
	for _, id := range []string{"E", "E.1", "E%2E1", "E\\x001"} {
		status, _, b := post(t, tester, "/fan", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {id}}, []byte(`{"id":"`+strings.ReplaceAll(id, `\`, `\\`)+`"}`))
		if status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", id, status, b)
		}
	}
	waitFor(t, "every action of every event", func() bool { return len(up.requests()) == 8 })
	seen := map[string]int{}
	for _, r := range up.requests() {
		seen[r.header.Get("Idempotency-Key")+" "+r.path]++
	}
	for _, id := range []string{"E", "E.1", "E%2E1", "E\\x001"} {
		for _, path := range []string{"/first", "/second"} {
			if seen[id+" "+path] != 1 {
				t.Errorf("%s %s delivered %d times", id, path, seen[id+" "+path])
			}
		}
	}
}

// Defect: static header values (credentials) were stored with every event,
// and retries sent the old ones after a config change. Now nothing secret
// is stored, and a retry after a reload uses the new key and signer.
func TestNoSecretStoredAndRotationApplies(t *testing.T) {
	t.Setenv("WG_TEST_UPSTREAM_KEY", "upstream-key-ONE-7f3a9c")
	var healthy atomic.Bool
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	site := func(signSecret string) string {
		return fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /rot {
		auth api_key k
		id_from {header.X-Event-Id}
		mode async
		forward %s/rot/{http.request.header.X-Tenant} {
			header X-Upstream-Key {env.WG_TEST_UPSTREAM_KEY}
			header X-Tenant {http.request.header.X-Tenant}
			sign github %s
			retries 20
			backoff 200ms 300ms
		}
	}
}
`, up.URL, signSecret)
	}
	tester, dir := asyncCaddy(t, "", site("sign-secret-ONE-b81c"))
	body := []byte(`{"amount":100}`)
	if status, _, b := post(t, tester, "/rot", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"rot-1"}, "X-Tenant": {"acme"}}, body); status != http.StatusAccepted {
		t.Fatalf("accept: %d %s", status, b)
	}
	waitFor(t, "a failed attempt", func() bool { return len(up.requests()) >= 1 })
	first := up.requests()[0]
	if first.header.Get("X-Upstream-Key") != "upstream-key-ONE-7f3a9c" || first.header.Get("X-Hub-Signature-256") != githubSignature("sign-secret-ONE-b81c", body) ||
		first.path != "/rot/acme" || first.header.Get("X-Tenant") != "acme" {
		t.Fatalf("first attempt %s %v", first.path, first.header)
	}

	// nothing secret in any file of the store
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range []string{"upstream-key-ONE-7f3a9c", "sign-secret-ONE-b81c"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds %s", path, secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// rotate both; the next attempt uses the running config's values
	t.Setenv("WG_TEST_UPSTREAM_KEY", "upstream-key-TWO-44d1")
	config := pebbleGlobal(dir, "") + site("sign-secret-TWO-90ee")
	if err := loadCaddyfile(t, config); err != nil {
		t.Fatal(err)
	}
	n := len(up.requests())
	healthy.Store(true)
	var last recorded
	waitFor(t, "a delivery with the rotated key", func() bool {
		reqs := up.requests()
		last = reqs[len(reqs)-1]
		return len(reqs) > n && last.header.Get("X-Upstream-Key") == "upstream-key-TWO-44d1"
	})
	if last.header.Get("X-Hub-Signature-256") != githubSignature("sign-secret-TWO-90ee", body) || last.path != "/rot/acme" ||
		last.header.Get("X-Tenant") != "acme" || last.header.Get("Idempotency-Key") != "rot-1" {
		t.Errorf("after rotation %s %v", last.path, last.header)
	}
	waitFor(t, "delivered", func() bool {
		evs := eventsOf(t, "rot", "rot-1")
		return len(evs) == 1 && evs[0].Status == "delivered"
	})
	// the admin API does not show stored values or internal keys
	resp, err := http.Get(adminURL() + "/webhook_gateway/event?id=rot-1")
	if err != nil {
		t.Fatal(err)
	}
	raw := new(bytes.Buffer)
	_, _ = raw.ReadFrom(resp.Body)
	resp.Body.Close()
	// the received headers are shown, the credential redacted; no other
	// "[redacted]" (a stored placeholder value) appears
	withoutKey := strings.Replace(raw.String(), `"X-Api-Key":["[redacted]"]`, "", 1)
	if withoutKey == raw.String() {
		t.Errorf("admin event does not show the api key header redacted: %s", raw)
	}
	for _, hidden := range []string{":url", ":action", "upstream-key", "sign-secret", "[redacted]", `"values"`} {
		if strings.Contains(withoutKey, hidden) {
			t.Errorf("admin event shows %q: %s", hidden, raw)
		}
	}
	var shown eventList
	if err := json.Unmarshal(raw.Bytes(), &shown); err != nil || len(shown.Events) != 1 || string(shown.Events[0].Payload) != `{"amount":100}` {
		t.Errorf("admin event: %v %s", err, raw)
	}
	for i, at := range shown.Events[0].Attempts[:len(shown.Events[0].Attempts)-1] {
		if at.Status != 503 || at.Error != "upstream answered 503" {
			t.Errorf("attempt %d: %+v", i+1, at)
		}
	}
}
