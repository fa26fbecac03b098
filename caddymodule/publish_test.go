package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/caddy-webhooks/gateway/internal/natstest"
	"github.com/caddy-webhooks/gateway/internal/rabbittest"
)

// TestPublishRabbitMQ publishes through a real Caddy to a real RabbitMQ
// started here, and reads the messages back from a queue bound to the
// exchange with event.#.
func TestPublishRabbitMQ(t *testing.T) {
	b := rabbittest.Start(t)
	queue := b.Declare(t, "events-to-enrich", "event.#")
	t.Setenv("GW_TEST_AMQP_URL", b.URL)

	t.Run("sync", func(t *testing.T) {
		up := newUpstream(t, nil)
		tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /pub {
		auth api_key k
		id_from {header.X-Event-Id}
		publish {env.GW_TEST_AMQP_URL} {
			name rabbit
			exchange events-to-enrich
			routing_key event.{http.request.header.X-Tenant}.github.{json.action}
		}
	}
	webhook_gateway /fan {
		auth api_key k
		id_from {header.X-Event-Id}
		forward %s/pets {
			name http
		}
		publish {env.GW_TEST_AMQP_URL} {
			name rabbit
			exchange events-to-enrich
			routing_key event.fan.{json.action}
			persistent off
		}
	}
	webhook_gateway /unroutable {
		auth api_key k
		publish {env.GW_TEST_AMQP_URL} {
			name rabbit
			exchange events-to-enrich
			routing_key nobody.listens
			retries 1
			backoff 10ms 20ms
		}
	}
}
`, up.URL))
		deliveries := b.Consume(t, queue)
		before := metricValue(t, `caddy_webhook_gateway_forwarded_total{action="rabbit",hook="pub",outcome="2xx"}`)

		body := []byte(`{"action":"opened","number":7}`)
		status, _, got := post(t, tester, "/pub", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"e-1"}, "X-Tenant": {"acme"}}, body)
		if status != http.StatusAccepted || strings.TrimSpace(string(got)) != `{"id":"e-1","status":"published"}` {
			t.Fatalf("publish: %d %s", status, got)
		}
		d := rabbittest.Next(t, deliveries)
		if d.RoutingKey != "event.acme.github.opened" || string(d.Body) != string(body) || d.MessageId != "e-1" ||
			d.DeliveryMode != amqp.Persistent || d.Exchange != "events-to-enrich" {
			t.Errorf("message: key %q body %s id %q mode %d exchange %q", d.RoutingKey, d.Body, d.MessageId, d.DeliveryMode, d.Exchange)
		}
		if d.Headers["Webhook-Hook"] != "pub" || d.Headers["Webhook-Attempt"] != int32(1) {
			t.Errorf("headers %v", d.Headers)
		}
		if after := metricValue(t, `caddy_webhook_gateway_forwarded_total{action="rabbit",hook="pub",outcome="2xx"}`); after != before+1 {
			t.Errorf("forwarded 2xx went from %v to %v", before, after)
		}

		// a value that cannot be in a routing key refuses the event
		status, _, got = post(t, tester, "/pub", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Tenant": {"acme"}}, []byte(`{"action":"a\u0001b"}`))
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(got), "routing key") {
			t.Errorf("control character in the routing key: %d %s", status, got)
		}

		// fan-out mixes a forward and a publish
		status, _, got = post(t, tester, "/fan", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"e-2"}}, []byte(`{"action":"closed"}`))
		var fan struct {
			ID, Status string
			Actions    []struct {
				Action   string
				Status   int
				Attempts int
				Error    string
			}
		}
		if status != http.StatusOK || json.Unmarshal(got, &fan) != nil || fan.Status != "delivered" || len(fan.Actions) != 2 ||
			fan.Actions[0].Action != "http" || fan.Actions[0].Status != 200 || fan.Actions[1].Action != "rabbit" || fan.Actions[1].Status != 202 {
			t.Fatalf("fan-out: %d %s", status, got)
		}
		if len(up.requests()) != 1 {
			t.Errorf("forward got %d requests", len(up.requests()))
		}
		d = rabbittest.Next(t, deliveries)
		if d.RoutingKey != "event.fan.closed" || d.MessageId != "e-2" || d.DeliveryMode != amqp.Transient {
			t.Errorf("fan-out message: key %q id %q mode %d", d.RoutingKey, d.MessageId, d.DeliveryMode)
		}

		// unroutable: the broker returns it, every attempt fails, 502
		status, _, got = post(t, tester, "/unroutable", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{}`))
		if status != http.StatusBadGateway || !strings.Contains(string(got), "after 2 attempts: unroutable") {
			t.Errorf("unroutable: %d %s", status, got)
		}
		if strings.Contains(string(got), "guest") {
			t.Errorf("answer holds the credentials: %s", got)
		}
	})

	t.Run("README block as written", func(t *testing.T) {
		block := readmeBlock(t, "publish amqp://{env.AMQP_USER}:{env.AMQP_PASS}@rabbit:5672/")
		t.Setenv("AMQP_USER", "guest")
		t.Setenv("AMQP_PASS", "guest")
		t.Setenv("GITHUB_WEBHOOK_SECRET", "readme-secret")
		block = strings.Replace(block, "rabbit:5672", fmt.Sprintf("127.0.0.1:%d", b.Port), 1)
		tester, _ := asyncCaddy(t, "", "http://localhost:9080 {\n"+block+"}\n")
		deliveries := b.Consume(t, queue)
		body := []byte(`{"ref":"refs/heads/main","repository":{"name":"gateway"}}`)
		hdr := http.Header{
			"X-Hub-Signature-256": {githubSignature("readme-secret", body)},
			"X-Github-Event":      {"push"},
			"X-Github-Delivery":   {"readme-1"},
		}
		status, _, got := post(t, tester, "/hooks/github", "application/json", hdr, body)
		if status != http.StatusAccepted {
			t.Fatalf("push: %d %s", status, got)
		}
		d := rabbittest.Next(t, deliveries)
		if d.RoutingKey != "event.acme.github.push" || d.MessageId != "readme-1" || string(d.Body) != string(body) {
			t.Errorf("message: key %q id %q body %s", d.RoutingKey, d.MessageId, d.Body)
		}
	})

	t.Run("async across a broker restart", func(t *testing.T) {
		tester, _ := asyncCaddy(t, "\t\tworkers 4", `
http://localhost:9080 {
	webhook_gateway /apub {
		auth api_key k
		id_from {header.X-Event-Id}
		mode async
		publish {env.GW_TEST_AMQP_URL} {
			name rabbit
			exchange events-to-enrich
			routing_key event.async.{json.n}
			timeout 2s
			retries 100
			backoff 100ms 1s
		}
	}
}
`)
		var (
			mu       sync.Mutex
			accepted []string
		)
		send := func(i int) {
			id := fmt.Sprintf("a-%d", i)
			status, _, got := post(t, tester, "/apub", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {id}}, fmt.Appendf(nil, `{"n":%d}`, i))
			if status != http.StatusAccepted {
				t.Errorf("%s: %d %s", id, status, got)
				return
			}
			mu.Lock()
			accepted = append(accepted, id)
			mu.Unlock()
		}
		delivered := func() map[string]bool {
			out := map[string]bool{}
			var l eventList
			adminGet(t, "/webhook_gateway/events?hook=apub&status=delivered&limit=1000", &l)
			for _, ev := range l.Events {
				out[ev.ID] = true
			}
			return out
		}

		const perPhase = 60
		i := 0
		for ; i < perPhase; i++ {
			send(i)
		}
		// load goes on while the broker stops
		stopped := make(chan struct{})
		loadDone := make(chan struct{})
		go func() {
			defer close(loadDone)
			for {
				select {
				case <-stopped:
					return
				default:
				}
				send(i)
				i++
				time.Sleep(5 * time.Millisecond)
			}
		}()
		b.Stop(t)
		close(stopped)
		<-loadDone
		// what was recorded delivered before the broker went must be in
		// the durable queue after it comes back
		deliveredWhileDown := delivered()
		for range perPhase {
			send(i) // accepted while the broker is down
			i++
		}
		b.Restart(t)
		for range perPhase {
			send(i)
			i++
		}

		mu.Lock()
		want := append([]string(nil), accepted...)
		mu.Unlock()
		if len(want) != i {
			t.Fatalf("%d events accepted, want %d", len(want), i)
		}
		seen := map[string]int{}
		deliveries := b.Consume(t, queue)
		deadline := time.After(90 * time.Second)
		for len(seen) < len(want) {
			select {
			case d := <-deliveries:
				if want := "event.async." + strings.TrimPrefix(d.MessageId, "a-"); d.RoutingKey != want {
					t.Errorf("%s: routing key %q, want %q", d.MessageId, d.RoutingKey, want)
				}
				seen[d.MessageId]++
			case <-deadline:
				var missing []string
				for _, id := range want {
					if seen[id] == 0 {
						missing = append(missing, id)
					}
				}
				t.Fatalf("%d of %d events never arrived: %v", len(missing), len(want), missing)
			}
		}
		for id := range deliveredWhileDown {
			if seen[id] == 0 {
				t.Errorf("%s was recorded delivered but is not in the queue", id)
			}
		}
		dups := 0
		for _, n := range seen {
			dups += n - 1
		}
		waitFor(t, "every event recorded delivered", func() bool { return len(delivered()) == len(want) })
		// the broker was really away while events were being published
		failed := 0
		var l eventList
		adminGet(t, "/webhook_gateway/events?hook=apub&limit=1000", &l)
		for _, ev := range l.Events {
			if len(ev.Attempts) > 1 {
				failed++
			}
		}
		if failed == 0 {
			t.Error("no event needed a second attempt: the broker restart did not meet the load")
		}
		t.Logf("%d events: %d recorded delivered before the stop, %d needed more than one attempt, %d arrived twice",
			len(want), len(deliveredWhileDown), failed, dups)
	})
}

// TestPublishNATS publishes through a real Caddy to an in-process
// JetStream server: the subject from the template, Nats-Msg-Id = the
// event id, in sync and async mode.
func TestPublishNATS(t *testing.T) {
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "HOOKS", Subjects: []string{"hooks.>"}})
	if err != nil {
		t.Fatal(err)
	}

	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /nsync {
		auth api_key k
		id_from {header.X-Event-Id}
		publish %[1]s {
			subject hooks.{json.repo}.push
		}
	}
	webhook_gateway /nasync {
		auth api_key k
		id_from {header.X-Event-Id}
		mode async
		publish %[1]s {
			subject hooks.{json.repo}.async
			retries 2
			backoff 10ms 20ms
		}
	}
}
`, ns.ClientURL()))

	status, _, got := post(t, tester, "/nsync", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"n-1"}}, []byte(`{"repo":"gateway"}`))
	if status != http.StatusAccepted || strings.TrimSpace(string(got)) != `{"id":"n-1","status":"published"}` {
		t.Fatalf("publish: %d %s", status, got)
	}
	// an empty value would leave an empty subject token: refused
	status, _, got = post(t, tester, "/nsync", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{"repo":""}`))
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(got), "subject") {
		t.Errorf("empty subject token: %d %s", status, got)
	}
	status, _, got = post(t, tester, "/nasync", "application/json", http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"n-2"}}, []byte(`{"repo":"gateway"}`))
	if status != http.StatusAccepted || !strings.Contains(string(got), `"queued"`) {
		t.Fatalf("async: %d %s", status, got)
	}
	waitFor(t, "the async publish", func() bool {
		evs := eventsOf(t, "nasync", "n-2")
		return len(evs) == 1 && evs[0].Status == "delivered"
	})

	for seq, want := range map[uint64]struct{ subject, id string }{1: {"hooks.gateway.push", "n-1"}, 2: {"hooks.gateway.async", "n-2"}} {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != want.subject || m.Header.Get("Nats-Msg-Id") != want.id || string(m.Data) != `{"repo":"gateway"}` {
			t.Errorf("message %d: %q %q %s", seq, m.Subject, m.Header.Get("Nats-Msg-Id"), m.Data)
		}
	}
}
