package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestPublishProvisionErrors: a publish action that cannot work is a
// config error that names the problem and never the URL's password.
func TestPublishProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     PublishConfig
		wantErr string
	}{
		{"no url", PublishConfig{RoutingKey: "k"}, "url is required"},
		{"unset env", PublishConfig{URL: "amqp://u:{env.GW_TEST_SURELY_UNSET}@r/", RoutingKey: "k"}, "GW_TEST_SURELY_UNSET is unset or empty"},
		{"request placeholder", PublishConfig{URL: "amqp://u:p4ssw0rd@r/{http.request.host}", RoutingKey: "k"}, "only {env.*} placeholders"},
		{"scheme", PublishConfig{URL: "ftp://u:p4ssw0rd@r/", RoutingKey: "k"}, "scheme must be amqp, amqps, nats or tls"},
		{"amqp without key", PublishConfig{URL: "amqp://u:p4ssw0rd@r/"}, "needs a routing_key"},
		{"amqp with subject", PublishConfig{URL: "amqp://u:p4ssw0rd@r/", RoutingKey: "k", Subject: "s"}, "subject is for NATS"},
		{"nats with key", PublishConfig{URL: "nats://t0ken@n:4222", Subject: "s", RoutingKey: "k"}, "are for RabbitMQ"},
		{"bad body", PublishConfig{URL: "nats://n:4222", Subject: "s", Body: "both"}, "body must be reshaped or original"},
		{"bad amqp url", PublishConfig{URL: "amqp://u:p4ssw0rd@r:port/", RoutingKey: "k"}, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.provision(caddy.NewReplacer(), false, 0)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "p4ssw0rd") || strings.Contains(err.Error(), "t0ken") {
				t.Errorf("error holds a credential: %v", err)
			}
		})
	}

	t.Setenv("GW_TEST_AMQP_PASS", "s3cret")
	a, err := (&PublishConfig{URL: "amqp://u:{env.GW_TEST_AMQP_PASS}@r/", Exchange: "ex-{json.team}", RoutingKey: "event.{json.repo.name}.{http.request.header.X-Event}"}).provision(caddy.NewReplacer(), false, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer a.sender.close()
	bt, ok := a.sender.(*brokerTarget)
	if !ok || a.name != "3" || bt.kind != "amqp" {
		t.Fatalf("name %q sender %T", a.name, a.sender)
	}
	want := []string{"http.webhook_gateway.json.repo.name", "http.request.header.X-Event", "http.webhook_gateway.json.team"}
	if strings.Join(a.keys, " ") != strings.Join(want, " ") {
		t.Errorf("keys %v, want %v", a.keys, want)
	}
}

// TestRoute: values a request brings cannot make a routing key or
// subject the broker refuses.
func TestRoute(t *testing.T) {
	repl := caddy.NewEmptyReplacer()
	vals := map[string]string{"v": "ok", "dot": "a.b", "empty": "", "star": "*", "space": "a b", "ctl": "a\x01b", "long": strings.Repeat("x", 300)}
	repl.Map(func(k string) (any, bool) { v, ok := vals[k]; return v, ok })
	for _, tc := range []struct {
		kind, key, want, wantErr string
	}{
		{"amqp", "event.{v}", "event.ok", ""},
		{"amqp", "event.{dot}", "event.a.b", ""},
		{"amqp", "{empty}", "", "routing key could not be built: it is empty"},
		{"amqp", "event.{ctl}", "", "control character"},
		{"amqp", "event.{long}", "", "longer than 255 bytes"},
		{"nats", "hooks.{v}", "hooks.ok", ""},
		{"nats", "hooks.{empty}", "", "empty token"},
		{"nats", "hooks.{star}", "", "wildcard"},
		{"nats", "hooks.{space}", "", "whitespace"},
	} {
		bt := &brokerTarget{kind: tc.kind, key: tc.key}
		_, key, err := bt.route(repl)
		switch {
		case tc.wantErr == "" && (err != nil || key != tc.want):
			t.Errorf("%s %q: %q %v, want %q", tc.kind, tc.key, key, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s %q: error %v, want %q", tc.kind, tc.key, err, tc.wantErr)
		}
	}
}
