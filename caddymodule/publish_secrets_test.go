package caddymodule_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublishNoCredentialsInLogs: a broker URL's password (and a NATS
// token) stays out of every answer, log line at DEBUG, stored attempt and
// metric while publishing fails against brokers that refuse connections.
func TestPublishNoCredentialsInLogs(t *testing.T) {
	const pass, token = "amqp-Pa55-w0rd", "nats-T0ken-xyz"
	t.Setenv("GW_TEST_BROKER_PASS", pass)
	refused := fmt.Sprintf("127.0.0.1:%d", freePort())
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	config := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	auto_https off
	log {
		output file %q
		format json
		level DEBUG
	}
	webhook_gateway {
		store pebble %s
	}
}
http://localhost:9080 {
	webhook_gateway /amqp {
		auth api_key k
		publish amqp://guest:{env.GW_TEST_BROKER_PASS}@%s/ {
			name rabbit
			exchange ex
			routing_key event.{json.kind}
			retries 1
			backoff 10ms 20ms
		}
	}
	webhook_gateway /nats {
		auth api_key k
		publish nats://%s@%s {
			name nats
			subject hooks.{json.kind}
			retries 1
			backoff 10ms 20ms
		}
	}
	webhook_gateway /async {
		auth api_key k
		id_from {header.X-Event-Id}
		mode async
		publish amqp://guest:{env.GW_TEST_BROKER_PASS}@%s/ {
			name rabbit
			routing_key event.{json.kind}
			retries 1
			backoff 10ms 20ms
		}
	}
}
`, logFile, t.TempDir(), refused, token, refused, refused)
	tester := newTester(t)
	tester.InitServer(withPorts(config), "caddyfile")
	t.Cleanup(func() { tester.InitServer(withPorts(globalOptions), "caddyfile") })

	hdr := http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {"sec-1"}}
	var bodies [][]byte
	for _, path := range []string{"/amqp", "/nats"} {
		status, _, body := post(t, tester, path, "application/json", hdr, []byte(`{"kind":"push"}`))
		if status != http.StatusBadGateway || !strings.Contains(string(body), "after 2 attempts") {
			t.Errorf("%s: %d %s", path, status, body)
		}
		bodies = append(bodies, body)
	}
	status, _, body := post(t, tester, "/async", "application/json", hdr, []byte(`{"kind":"push"}`))
	if status != http.StatusAccepted {
		t.Fatalf("async: %d %s", status, body)
	}
	waitFor(t, "the async event to go dead", func() bool {
		evs := eventsOf(t, "async", "sec-1")
		return len(evs) == 1 && evs[0].Status == "dead"
	})
	var l eventList
	adminGet(t, "/webhook_gateway/event?hook=async&id=sec-1", &l)
	if len(l.Events) != 1 || len(l.Events[0].Attempts) != 2 || l.Events[0].Attempts[0].Error == "" {
		t.Fatalf("stored attempts %+v", l.Events)
	}
	for _, a := range l.Events[0].Attempts {
		bodies = append(bodies, []byte(a.Error))
	}
	resp, err := http.Get(adminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	bodies = append(bodies, metrics)
	for i, b := range bodies {
		for _, s := range []string{pass, token} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("answer, stored error or metrics %d contains %q: %s", i, s, b)
			}
		}
	}

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	attempts, gaveUp := 0, 0
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if bytes.Contains(line, []byte(`"publish attempt"`)) {
			attempts++
		}
		if bytes.Contains(line, []byte(`"publish gave up"`)) {
			gaveUp++
		}
		for _, s := range []string{pass, token} {
			if bytes.Contains(line, []byte(s)) {
				t.Errorf("log line contains %q: %s", s, line)
			}
		}
	}
	if attempts < 6 || gaveUp < 3 {
		t.Errorf("%d publish attempt and %d gave up lines captured, want at least 6 and 3: DEBUG logging not captured", attempts, gaveUp)
	}
}
