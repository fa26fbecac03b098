package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/tidwall/gjson"

	"github.com/caddy-webhooks/gateway/internal/rabbittest"
)

// TestIssuedHooksPublishRabbitMQ is the whole flow end to end, through a
// real Caddy to a real RabbitMQ: a tenant creates a hook through the
// management API behind forward_auth (a token service that names the
// tenant), validates it (HEAD 200), pushes a GitHub push to its hookUrl,
// and a consumer of a queue bound with event.# reads it under
// event.<tenant>.github.push with the tsField value; in sync and async
// mode. Then the hook is deleted (204) and its URL answers 401.
func TestIssuedHooksPublishRabbitMQ(t *testing.T) {
	b := rabbittest.Start(t)
	queue := b.Declare(t, "events-to-enrich", "event.#")
	t.Setenv("GW_TEST_AMQP_URL", b.URL)

	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer acme-token":
			w.Header().Set("X-Tenant-Id", "acme")
		case "Bearer globex-token":
			w.Header().Set("X-Tenant-Id", "globex")
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(sts.Close)

	route := func(path, mode string) string {
		return fmt.Sprintf(`
	handle /%s/* {
		webhook_gateway {
			name %s
			auth issued github-hooks {path.1} {path.2}
			mode %s
			reshape keep {
				set eventTime {http.webhook_gateway.issued.ts}
			}
			publish {env.GW_TEST_AMQP_URL} {
				name rabbit
				exchange events-to-enrich
				routing_key event.{http.webhook_gateway.issued.tenant}.{http.webhook_gateway.issued.datasource}.{http.webhook_gateway.issued.event}
				retries 2
				backoff 50ms 200ms
			}
		}
	}`, path, path, mode)
	}
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	handle /wh/config* {
		forward_auth %s {
			uri /validate
			copy_headers X-Tenant-Id
		}
		webhook_gateway_tokens {
			issuer   github-hooks
			tenant   {http.request.header.X-Tenant-Id}
			hook_url http://{http.request.hostport}/wh/{api_token}/{token}
		}
	}
%s
%s
}
`, sts.URL, route("wh", "sync"), route("wha", "async")))

	acme := http.Header{"Authorization": {"Bearer acme-token"}}
	globex := http.Header{"Authorization": {"Bearer globex-token"}}
	hook := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"push","tsField":"commits[0].timestamp"}`)
	if hook.TenantID != "acme" || hook.TSField != "commits[0].timestamp" {
		t.Fatalf("created %+v", hook)
	}
	other := createHook(t, tester, "/wh/config", globex, `{"datasource":"github","event":"push"}`)

	if status, _, body := call(t, tester, http.MethodHead, "/wh/config/"+hook.Token, acme, ""); status != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD: %d %q", status, body)
	}
	var list []issuedHook
	status, _, body := call(t, tester, http.MethodGet, "/wh/config", acme, "")
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0] != hook {
		t.Fatalf("acme's list: %d %s", status, body)
	}
	var one issuedHook
	status, _, body = call(t, tester, http.MethodGet, "/wh/config/"+hook.Token, acme, "")
	if status != http.StatusOK || json.Unmarshal(body, &one) != nil || one != hook {
		t.Fatalf("get: %d %s", status, body)
	}
	if status, _, _ := call(t, tester, http.MethodGet, "/wh/config/"+hook.Token, globex, ""); status != http.StatusNotFound {
		t.Fatalf("globex reads acme's hook: %d", status)
	}

	deliveries := b.Consume(t, queue)
	check := func(d amqp.Delivery, id, tenant, ts string) {
		t.Helper()
		if d.RoutingKey != "event."+tenant+".github.push" || d.MessageId != id || d.DeliveryMode != amqp.Persistent {
			t.Errorf("message: key %q id %q mode %d", d.RoutingKey, d.MessageId, d.DeliveryMode)
		}
		if got := gjson.GetBytes(d.Body, "eventTime").String(); got != ts {
			t.Errorf("eventTime %q, want %q", got, ts)
		}
		if got := gjson.GetBytes(d.Body, "repository.full_name").String(); got != "Codertocat/Hello-World" {
			t.Errorf("body lost the payload: %s", d.Body)
		}
		t.Logf("consumed %s: routing key %s, body %s", id, d.RoutingKey, gjson.GetBytes(d.Body, "@ugly"))
	}

	// sync: 202 once RabbitMQ confirmed
	status, _, body = call(t, tester, http.MethodPost, hookPath(t, hook), nil, githubPush)
	var acc struct{ ID, Status string }
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.Status != "published" {
		t.Fatalf("push: %d %s", status, body)
	}
	check(rabbittest.Next(t, deliveries), acc.ID, "acme", "2026-11-23T10:00:00+01:00")

	// async: the issued values are stored with the event
	asyncPath := "/wha" + strings.TrimPrefix(hookPath(t, hook), "/wh")
	status, _, body = call(t, tester, http.MethodPost, asyncPath, nil, githubPush)
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.Status != "queued" {
		t.Fatalf("async push: %d %s", status, body)
	}
	check(rabbittest.Next(t, deliveries), acc.ID, "acme", "2026-11-23T10:00:00+01:00")

	// another tenant's hook routes under its own tenant; no tsField, no time
	status, _, body = call(t, tester, http.MethodPost, hookPath(t, other), nil, githubPush)
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil {
		t.Fatalf("globex push: %d %s", status, body)
	}
	check(rabbittest.Next(t, deliveries), acc.ID, "globex", "")

	// delete: 204, then the URL is dead at once
	if status, _, body := call(t, tester, http.MethodDelete, "/wh/config/"+hook.Token, acme, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if status, _, body := call(t, tester, http.MethodPost, hookPath(t, hook), nil, githubPush); status != http.StatusUnauthorized {
		t.Fatalf("push to a deleted hook: %d %s", status, body)
	}
	if status, _, _ := call(t, tester, http.MethodHead, "/wh/config/"+hook.Token, acme, ""); status != http.StatusNotFound {
		t.Fatalf("HEAD of a deleted hook: %d", status)
	}
	// a sentinel through globex's hook: the queue keeps order, so a
	// publish of the refused push would come before it
	status, _, body = call(t, tester, http.MethodPost, hookPath(t, other), nil, githubPush)
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil {
		t.Fatalf("sentinel push: %d %s", status, body)
	}
	if d := rabbittest.Next(t, deliveries); d.MessageId != acc.ID {
		t.Fatalf("a refused push was published: %s %s", d.RoutingKey, d.Body)
	}
}
