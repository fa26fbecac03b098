package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// eventView is the admin API's view of a stored record.
type eventView struct {
	Key        string          `json:"key"`
	ID         string          `json:"id"`
	Hook       string          `json:"hook"`
	Action     int             `json:"action"`
	ActionName string          `json:"action_name"`
	Status     string          `json:"status"`
	DueAt      *time.Time      `json:"due_at"`
	Deferrals  int             `json:"deferrals"`
	Payload    json.RawMessage `json:"payload"`
	Sent       json.RawMessage `json:"sent"`
	Attempts   []struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"attempts"`
}

type eventList struct {
	Events []eventView `json:"events"`
	Next   string      `json:"next"`
}

func adminGet(t *testing.T, path string, into any) int {
	t.Helper()
	resp, err := http.Get(adminURL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil {
		_ = json.NewDecoder(resp.Body).Decode(into)
	}
	return resp.StatusCode
}

func adminPost(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(adminURL()+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// eventsOf lists every stored record of an event id, newest first.
func eventsOf(t *testing.T, hook, id string) []eventView {
	t.Helper()
	var l eventList
	adminGet(t, "/webhook_gateway/event?hook="+hook+"&id="+id, &l)
	return l.Events
}

// waitFor polls cond for up to 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// asyncCaddy runs Caddy on sites with a Pebble store in a fresh directory
// and extra global webhook_gateway options. When the test ends it loads a
// config without the app, so its workers stop before the directory goes
// and nothing of this test runs on into the next.
func asyncCaddy(t *testing.T, appOptions, sites string) (*caddytest.Tester, string) {
	t.Helper()
	dir := t.TempDir()
	config := pebbleGlobal(dir, appOptions) + sites
	tester := newTester(t)
	tester.InitServer(withPorts(config), "caddyfile")
	t.Cleanup(func() { tester.InitServer(withPorts(globalOptions), "caddyfile") })
	return tester, dir
}

// pebbleGlobal is the test's global options with the app on a Pebble
// store in dir and extra app options.
func pebbleGlobal(dir, appOptions string) string {
	return strings.Replace(globalOptions, "auto_https off", fmt.Sprintf("auto_https off\n\twebhook_gateway {\n\t\tstore pebble %s\n%s\n\t}", dir, appOptions), 1)
}

// metricValue reads one sample from the admin /metrics endpoint, 0 when
// absent. Counters live for the process, so tests compare values before
// and after.
func metricValue(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(sample) + " ([0-9.e+-]+)$").FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestAsyncDelivery(t *testing.T) {
	ok := newUpstream(t, nil)
	flaky := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	rejecting := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	tester, _ := asyncCaddy(t, "\t\tworkers 4", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /async {
		auth api_key k
		id_from {header.X-Event-Id}
		deduplicate
		mode async
		reshape {
			set Name {json.petname} required
		}
		forward %s/pets
	}
	webhook_gateway /flaky {
		auth api_key k
		mode async
		forward %s/pets {
			retries 3
			backoff 10ms 20ms
		}
	}
	webhook_gateway /dead {
		auth api_key k
		id_from {header.X-Event-Id}
		mode async
		forward %s/pets {
			retries 3
			backoff 10ms 20ms
		}
	}
}
`, ok.URL, flaky.URL, rejecting.URL))

	// counters live for the process (a second -count run adds to them), and
	// a config without these hooks does not show them: read them now
	deadBefore := metricValue(t, `caddy_webhook_gateway_dead_total{hook="dead"}`)
	mappingBefore := metricValue(t, `caddy_webhook_gateway_rejected_total{hook="async",reason="mapping"}`)

	hdr := http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"evt-1"}}
	status, rh, body := post(t, tester, "/async", "application/json", hdr, []byte(`{"petname":"Gromit"}`))
	var acc struct{ ID, Status string }
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.ID != "evt-1" || acc.Status != "queued" {
		t.Fatalf("accept: %d %s", status, body)
	}
	// no Location: the event is on the admin endpoint, not on this site
	if loc := rh.Get("Location"); loc != "" {
		t.Errorf("Location %q", loc)
	}
	waitFor(t, "the async delivery", func() bool { return len(ok.requests()) == 1 })
	got := ok.requests()[0]
	if string(got.body) != `{"Name":"Gromit"}` || got.header.Get("Idempotency-Key") != "evt-1" || got.header.Get("Webhook-Attempt") != "1" {
		t.Errorf("delivered %s %v", got.body, got.header)
	}
	var ev eventView
	waitFor(t, "delivered status", func() bool {
		evs := eventsOf(t, "async", "evt-1")
		if len(evs) == 1 {
			ev = evs[0]
		}
		return ev.Status == "delivered"
	})
	if len(ev.Attempts) != 1 || ev.Attempts[0].Status != 200 || string(ev.Payload) != `{"petname":"Gromit"}` || string(ev.Sent) != `{"Name":"Gromit"}` || ev.DueAt != nil || ev.ActionName != "0" {
		t.Errorf("event %+v", ev)
	}

	// a duplicate is answered 200 and not delivered again
	status, _, body = post(t, tester, "/async", "application/json", hdr, []byte(`{"petname":"Gromit"}`))
	if status != http.StatusOK || !strings.Contains(string(body), `"duplicate"`) {
		t.Fatalf("duplicate: %d %s", status, body)
	}
	// a bad request is still refused before anything is stored
	status, _, _ = post(t, tester, "/async", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"evt-2"}}, []byte(`{"other":1}`))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("missing required field: %d", status)
	}
	if code := adminGet(t, "/webhook_gateway/event?hook=async&id=evt-2", nil); code != http.StatusNotFound {
		t.Errorf("refused event stored: admin answered %d", code)
	}

	// retried on its schedule until delivered
	status, _, _ = post(t, tester, "/flaky", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{"a":1}`))
	if status != http.StatusAccepted {
		t.Fatalf("flaky accept: %d", status)
	}
	waitFor(t, "three attempts at the flaky upstream", func() bool { return len(flaky.requests()) == 3 })
	reqs := flaky.requests()
	for i, r := range reqs {
		if r.header.Get("Webhook-Attempt") != fmt.Sprint(i+1) || r.header.Get("Idempotency-Key") != reqs[0].header.Get("Idempotency-Key") {
			t.Errorf("attempt %d headers %v", i+1, r.header)
		}
	}

	// a 400 is final: dead after one attempt; replay delivers it again
	if status, _, _ := post(t, tester, "/dead", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"evt-dead"}}, []byte(`{}`)); status != http.StatusAccepted {
		t.Fatalf("dead accept: %d", status)
	}
	waitFor(t, "dead status", func() bool {
		evs := eventsOf(t, "dead", "evt-dead")
		if len(evs) == 1 {
			ev = evs[0]
		}
		return ev.Status == "dead"
	})
	if len(ev.Attempts) != 1 || ev.Attempts[0].Status != 400 || ev.Attempts[0].Error != "upstream answered 400 (not retried)" {
		t.Errorf("dead event %+v", ev)
	}
	var page eventList
	adminGet(t, "/webhook_gateway/events?hook=dead&status=dead", &page)
	if len(page.Events) != 1 || page.Events[0].ID != "evt-dead" || page.Events[0].Key != ev.Key {
		t.Errorf("dead listing %+v", page)
	}
	if code, body := adminPost(t, "/webhook_gateway/replay?key="+ev.Key); code != http.StatusAccepted || !strings.Contains(string(body), ev.Key) {
		t.Fatalf("replay: %d %s", code, body)
	}
	waitFor(t, "the replayed attempt", func() bool { return len(rejecting.requests()) == 2 })
	if code := adminGet(t, "/webhook_gateway/events?status=bogus", nil); code != http.StatusBadRequest {
		t.Errorf("bad status filter: %d", code)
	}

	// queue depth and delivery counters on the admin /metrics endpoint
	waitFor(t, "the replayed event dead again", func() bool {
		evs := eventsOf(t, "dead", "evt-dead")
		return len(evs) == 1 && evs[0].Status == "dead" && len(evs[0].Attempts) == 2
	})
	waitFor(t, "flaky delivered", func() bool {
		return metricValue(t, `caddy_webhook_gateway_queue_events{hook="flaky",status="delivered"}`) == 1
	})
	for sample, want := range map[string]float64{
		`caddy_webhook_gateway_queue_events{hook="async",status="delivered"}`: 1,
		`caddy_webhook_gateway_queue_events{hook="dead",status="dead"}`:       1,
		`caddy_webhook_gateway_queue_oldest_due_seconds`:                      0,
	} {
		if got := metricValue(t, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if got := metricValue(t, `caddy_webhook_gateway_dead_total{hook="dead"}`) - deadBefore; got != 2 {
		t.Errorf("dead_total grew by %v, want 2", got)
	}
	if got := metricValue(t, `caddy_webhook_gateway_rejected_total{hook="async",reason="mapping"}`) - mappingBefore; got != 1 {
		t.Errorf("rejected mapping grew by %v, want 1", got)
	}
	// an empty result is an empty list
	var empty eventList
	if code := adminGet(t, "/webhook_gateway/events?hook=nothing-here", &empty); code != http.StatusOK || empty.Events == nil || len(empty.Events) != 0 {
		t.Errorf("empty listing: %d %+v", code, empty)
	}
}

// moduleGoroutines lists the running goroutines with a frame of this
// module or of the Pebble store, apart from tests' own.
func moduleGoroutines() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "caddymodule_test.") {
			continue
		}
		if strings.Contains(g, "caddy-webhooks/gateway/") || strings.Contains(g, "cockroachdb/pebble") {
			out = append(out, g)
		}
	}
	return out
}

// Workers, the lease loop, the purge loop and the store belong to a config:
// once a config without the app replaces it, none of them runs on.
func TestNoGoroutineOutlivesConfig(t *testing.T) {
	up := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "\t\tworkers 8", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /a {
		auth api_key k
		mode async
		forward %s/a
	}
}
`, up.URL))
	for range 20 {
		if status, _, b := post(t, tester, "/a", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{}`)); status != http.StatusAccepted {
			t.Fatalf("%d %s", status, b)
		}
	}
	waitFor(t, "deliveries", func() bool { return len(up.requests()) == 20 })
	if len(moduleGoroutines()) == 0 {
		t.Fatal("no worker goroutine seen while the config runs: the check below would prove nothing")
	}
	tester.InitServer(withPorts(globalOptions), "caddyfile")
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := moduleGoroutines()
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines outlive the config, the first:\n%s", len(left), left[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
