package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventView is the admin API's view of a stored event.
type eventView struct {
	ID       string `json:"id"`
	Hook     string `json:"hook"`
	Status   string `json:"status"`
	Payload  []byte `json:"payload"`
	Attempts []struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"attempts"`
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

// waitFor polls cond for up to 15s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	store := filepath.Join(t.TempDir(), "events.db")
	config := strings.Replace(globalOptions, "auto_https off", fmt.Sprintf("auto_https off\n\twebhook_gateway {\n\t\tstore bolt %s\n\t\tworkers 4\n\t}", store), 1) +
		fmt.Sprintf(`
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
`, ok.URL, flaky.URL, rejecting.URL)
	tester := newTester(t)
	tester.InitServer(withPorts(config), "caddyfile")

	hdr := http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"evt-1"}}
	status, rh, body := post(t, tester, "/async", "application/json", hdr, []byte(`{"petname":"Gromit"}`))
	var acc struct{ ID, Status string }
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.ID != "evt-1" || acc.Status != "queued" {
		t.Fatalf("accept: %d %s", status, body)
	}
	if loc := rh.Get("Location"); loc != "/webhook_gateway/event?hook=async&id=evt-1" {
		t.Errorf("Location %q", loc)
	}
	waitFor(t, "the async delivery", func() bool { return len(ok.requests()) == 1 })
	got := ok.requests()[0]
	if string(got.body) != `{"Name":"Gromit"}` || got.header.Get("Idempotency-Key") != "evt-1" || got.header.Get("Webhook-Attempt") != "1" {
		t.Errorf("delivered %s %v", got.body, got.header)
	}
	var ev eventView
	waitFor(t, "delivered status", func() bool {
		adminGet(t, "/webhook_gateway/event?hook=async&id=evt-1", &ev)
		return ev.Status == "delivered"
	})
	if len(ev.Attempts) != 1 || ev.Attempts[0].Status != 200 || string(ev.Payload) != `{"Name":"Gromit"}` {
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
		adminGet(t, "/webhook_gateway/event?hook=dead&id=evt-dead", &ev)
		return ev.Status == "dead"
	})
	if len(ev.Attempts) != 1 || ev.Attempts[0].Status != 400 {
		t.Errorf("dead event %+v", ev)
	}
	var page struct {
		Events []eventView `json:"events"`
	}
	adminGet(t, "/webhook_gateway/events?hook=dead&status=dead", &page)
	if len(page.Events) != 1 || page.Events[0].ID != "evt-dead" {
		t.Errorf("dead listing %+v", page)
	}
	resp, err := http.Post(adminURL()+"/webhook_gateway/replay?hook=dead&id=evt-dead", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("replay: %d", resp.StatusCode)
	}
	waitFor(t, "the replayed attempt", func() bool { return len(rejecting.requests()) == 2 })
	if code := adminGet(t, "/webhook_gateway/events?status=bogus", nil); code != http.StatusBadRequest {
		t.Errorf("bad status filter: %d", code)
	}

	// queue depth and delivery counters on the admin /metrics endpoint
	waitFor(t, "the replayed event dead again", func() bool {
		adminGet(t, "/webhook_gateway/event?hook=dead&id=evt-dead", &ev)
		return ev.Status == "dead"
	})
	resp, err = http.Get(adminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`caddy_webhook_gateway_queue_events{hook="async",status="delivered"} 1`,
		`caddy_webhook_gateway_queue_events{hook="dead",status="dead"} 1`,
		`caddy_webhook_gateway_queue_events{hook="flaky",status="delivered"} 1`,
		`caddy_webhook_gateway_queue_oldest_due_seconds 0`,
		`caddy_webhook_gateway_dead_total{hook="dead"} 2`,
		`caddy_webhook_gateway_rejected_total{hook="async",reason="mapping"} 1`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}
