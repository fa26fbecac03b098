package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/internal/natstest"
)

// TestAsyncDeliveryNATS runs async mode through a real Caddy on the NATS
// store, against a JetStream server started here on loopback: accepted,
// delivered, visible in the admin API, and deduplicated.
func TestAsyncDeliveryNATS(t *testing.T) {
	ns := natstest.Start(t)

	up := newUpstream(t, nil)
	config := strings.Replace(globalOptions, "auto_https off", fmt.Sprintf(
		"auto_https off\n\twebhook_gateway {\n\t\tstore nats %s {\n\t\t\tstream caddytest\n\t\t\treplicas 1\n\t\t}\n\t\tworkers 1\n\t}", ns.ClientURL()), 1) +
		fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /nats {
		auth api_key k
		id_from {header.X-Event-Id}
		deduplicate 1h
		mode async
		forward %s/pets
	}
}
`, up.URL)
	tester := newTester(t)
	tester.InitServer(withPorts(config), "caddyfile")
	// before the NATS server stops, leave Caddy on a config without it
	t.Cleanup(func() { tester.InitServer(withPorts(globalOptions), "caddyfile") })

	hdr := http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"nats-1"}}
	status, _, body := post(t, tester, "/nats", "application/json", hdr, []byte(`{"petname":"Gromit"}`))
	var acc struct{ ID, Status string }
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.ID != "nats-1" || acc.Status != "queued" {
		t.Fatalf("accept: %d %s", status, body)
	}
	waitFor(t, "delivery through NATS", func() bool { return len(up.requests()) == 1 })
	if got := up.requests()[0]; string(got.body) != `{"petname":"Gromit"}` || got.header.Get("Idempotency-Key") != "nats-1" {
		t.Errorf("delivered %s %v", got.body, got.header)
	}
	waitFor(t, "delivered status", func() bool {
		evs := eventsOf(t, "nats", "nats-1")
		return len(evs) == 1 && evs[0].Status == "delivered"
	})
	status, _, body = post(t, tester, "/nats", "application/json", hdr, []byte(`{"petname":"Gromit"}`))
	if status != http.StatusOK || !strings.Contains(string(body), `"duplicate"`) {
		t.Fatalf("duplicate: %d %s", status, body)
	}
	// a sentinel event after the duplicate: one worker takes events in the
	// order they were stored, so once the sentinel is delivered, a
	// duplicate that had been queued would have been delivered before it
	sentinel := http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"nats-sentinel"}}
	if status, _, body = post(t, tester, "/nats", "application/json", sentinel, []byte(`{"sentinel":true}`)); status != http.StatusAccepted {
		t.Fatalf("sentinel: %d %s", status, body)
	}
	waitFor(t, "delivery of the sentinel", func() bool {
		for _, r := range up.requests() {
			if r.header.Get("Idempotency-Key") == "nats-sentinel" {
				return true
			}
		}
		return false
	})
	if got := up.requests(); len(got) != 2 || got[1].header.Get("Idempotency-Key") != "nats-sentinel" {
		for _, r := range got {
			t.Logf("delivered %s %s", r.header.Get("Idempotency-Key"), r.body)
		}
		t.Errorf("duplicate delivered again: %d deliveries, want the first and the sentinel", len(got))
	}
}
