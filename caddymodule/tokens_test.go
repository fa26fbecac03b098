package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-webhooks/gateway/internal/natstest"
	"github.com/caddy-webhooks/gateway/queue"
)

// issuedHook is a hook as the management API answers it.
type issuedHook struct {
	Datasource string `json:"datasource"`
	Event      string `json:"event"`
	CreatedAt  int64  `json:"createdAt"`
	APIToken   string `json:"apiToken"`
	TenantID   string `json:"tenantId"`
	Token      string `json:"token"`
	TSField    string `json:"tsField"`
	HookURL    string `json:"hookUrl"`
}

var (
	uuidV4    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	hex40     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	errorJSON = regexp.MustCompile(`^\{"error":"(?:[^"\\]|\\.)*","status":\d+\}\n$`)
)

// githubPush is a push event as GitHub sends it (abridged from the
// documented example payload).
const githubPush = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0000000000000000000000000000000000000000",
  "repository": {"id": 186853002, "name": "Hello-World", "full_name": "Codertocat/Hello-World"},
  "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
  "commits": [
    {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "message": "Update README.md",
     "timestamp": "2026-11-23T10:00:00+01:00", "author": {"name": "Codertocat"}},
    {"id": "7113728f27ae82c7b1a177c8d03f9e96e0adf247", "message": "Second",
     "timestamp": "2026-11-23T11:00:00+01:00", "author": {"name": "Codertocat"}}
  ],
  "head_commit": {"id": "7113728f27ae82c7b1a177c8d03f9e96e0adf247", "timestamp": "2026-11-23T11:00:00+01:00"}
}`

// call sends one request to the gateway.
func call(t *testing.T, tester *caddytest.Tester, method, path string, header http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequest(method, gatewayURL()+path, rd)
	} else {
		req, err = http.NewRequest(method, gatewayURL()+path, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(t, tester, req)
}

func basicAuth(user, pass string) http.Header {
	r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	r.SetBasicAuth(user, pass)
	return http.Header{"Authorization": r.Header["Authorization"]}
}

// createHook POSTs body as a tenant and decodes the hook.
func createHook(t *testing.T, tester *caddytest.Tester, path string, auth http.Header, body string) issuedHook {
	t.Helper()
	status, _, b := call(t, tester, http.MethodPost, path, auth, body)
	var h issuedHook
	if status != http.StatusOK || json.Unmarshal(b, &h) != nil {
		t.Fatalf("POST %s %s: %d %s", path, body, status, b)
	}
	return h
}

// hookPath is the path of a hook URL.
func hookPath(t *testing.T, h issuedHook) string {
	t.Helper()
	p, ok := strings.CutPrefix(h.HookURL, gatewayURL())
	if !ok {
		t.Fatalf("hookUrl %q is not on the gateway %s", h.HookURL, gatewayURL())
	}
	return p
}

func bcryptHash(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestIssuedHooks runs the management API and `auth issued` through a
// real Caddy on the embedded store: the tenant is the basic_auth user.
func TestIssuedHooks(t *testing.T) {
	up, upAsync := newUpstream(t, nil), newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	handle /wh/config* {
		basic_auth {
			acme %s
			globex %s
		}
		webhook_gateway_tokens {
			issuer   github-hooks
			tenant   {http.auth.user.id}
			hook_url http://{http.request.hostport}/wh/{api_token}/{token}
		}
	}
	handle /open/config* {
		webhook_gateway_tokens {
			issuer   github-hooks
			tenant   {http.request.header.X-Tenant}
			hook_url http://{http.request.hostport}/wh/{api_token}/{token}
		}
	}
	handle /wh/* {
		webhook_gateway {
			name issued
			auth issued github-hooks {path.1} {path.2}
			forward %s/events/{http.webhook_gateway.issued.tenant} {
				header X-Tenant {http.webhook_gateway.issued.tenant}
				header X-Datasource {http.webhook_gateway.issued.datasource}
				header X-Event {http.webhook_gateway.issued.event}
				header X-TS-Field {http.webhook_gateway.issued.ts_field}
				header X-TS {http.webhook_gateway.issued.ts}
				retries 0
			}
		}
	}
	handle /gate/* {
		webhook_gateway {
			name issued-gate
			auth issued github-hooks {path.1} {path.2}
		}
		respond "{http.webhook_gateway.issued.tenant}|{http.webhook_gateway.issued.datasource}|{http.webhook_gateway.issued.event}|{http.webhook_gateway.issued.ts_field}|{http.webhook_gateway.issued.ts}"
	}
	handle /async/* {
		webhook_gateway {
			name issued-async
			auth issued github-hooks {path.1} {path.2}
			mode async
			forward %s/async/{http.webhook_gateway.issued.tenant} {
				header X-Event {http.webhook_gateway.issued.event}
				header X-TS {http.webhook_gateway.issued.ts}
			}
		}
	}
	handle /other/* {
		webhook_gateway {
			name other-issuer
			auth issued gitlab-hooks {path.1} {path.2}
		}
		respond "passed"
	}
}
`, bcryptHash(t, "acme-pw"), bcryptHash(t, "globex-pw"), up.URL, upAsync.URL))
	acme, globex := basicAuth("acme", "acme-pw"), basicAuth("globex", "globex-pw")

	before := time.Now().UnixMilli()
	push := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"push","tsField":"commits[0].timestamp"}`)
	after := time.Now().UnixMilli()
	if push.Datasource != "github" || push.Event != "push" || push.TenantID != "acme" || push.TSField != "commits[0].timestamp" ||
		!uuidV4.MatchString(push.APIToken) || !hex40.MatchString(push.Token) || push.CreatedAt < before || push.CreatedAt > after ||
		push.HookURL != fmt.Sprintf("%s/wh/%s/%s", gatewayURL(), push.APIToken, push.Token) {
		t.Fatalf("created %+v", push)
	}

	t.Run("upsert", func(t *testing.T) {
		kept := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"push"}`)
		if kept != push {
			t.Fatalf("tsField omitted: %+v, want unchanged %+v", kept, push)
		}
		cleared := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"push","tsField":""}`)
		want := push
		want.TSField = ""
		if cleared != want {
			t.Fatalf("tsField \"\": %+v, want %+v", cleared, want)
		}
		restored := createHook(t, tester, "/wh/config", acme, `{"tsField":"commits[0].timestamp","event":"push","datasource":"github"}`)
		if restored != push {
			t.Fatalf("tsField set again: %+v, want %+v", restored, push)
		}
	})

	release := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"release","tsField":"head_commit.timestamp"}`)
	circle := createHook(t, tester, "/wh/config", acme, `{"datasource":"circleci","event":"workflow-completed"}`)
	theirs := createHook(t, tester, "/wh/config", globex, `{"datasource":"github","event":"push","tsField":"commits.1.timestamp"}`)
	if theirs.TenantID != "globex" || theirs.Token == push.Token || theirs.APIToken == push.APIToken {
		t.Fatalf("globex's hook %+v", theirs)
	}

	t.Run("list and get", func(t *testing.T) {
		status, hdr, b := call(t, tester, http.MethodGet, "/wh/config", acme, "")
		var list []issuedHook
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" || json.Unmarshal(b, &list) != nil {
			t.Fatalf("list: %d %s", status, b)
		}
		if len(list) != 3 || list[0] != circle || list[1] != push || list[2] != release {
			t.Fatalf("acme's list (by datasource, event): %s", b)
		}
		status, _, b = call(t, tester, http.MethodGet, "/wh/config", globex, "")
		if status != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0] != theirs {
			t.Fatalf("globex's list: %d %s", status, b)
		}
		var one issuedHook
		status, _, b = call(t, tester, http.MethodGet, "/wh/config/"+release.Token, acme, "")
		if status != http.StatusOK || json.Unmarshal(b, &one) != nil || one != release {
			t.Fatalf("get: %d %s", status, b)
		}
		status, _, b = call(t, tester, http.MethodHead, "/wh/config/"+release.Token, acme, "")
		if status != http.StatusOK || len(b) != 0 {
			t.Fatalf("head: %d %q", status, b)
		}
		for _, tok := range []string{strings.Repeat("0", 40), "not-a-token", strings.Repeat("a", 500)} {
			if status, _, b = call(t, tester, http.MethodHead, "/wh/config/"+tok, acme, ""); status != http.StatusNotFound || len(b) != 0 {
				t.Errorf("head of unknown %.20s: %d %q", tok, status, b)
			}
			if status, _, b = call(t, tester, http.MethodGet, "/wh/config/"+tok, acme, ""); hex40.MatchString(tok) && status != http.StatusNotFound {
				t.Errorf("get of unknown %.20s: %d %s", tok, status, b)
			}
		}
	})

	t.Run("tenants are isolated", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodDelete} {
			status, _, b := call(t, tester, m, "/wh/config/"+push.Token, globex, "")
			if status != http.StatusNotFound {
				t.Fatalf("%s of acme's hook as globex: %d %s", m, status, b)
			}
			if bytes.Contains(b, []byte("acme")) || bytes.Contains(b, []byte(push.APIToken)) || bytes.Contains(b, []byte("github")) {
				t.Fatalf("%s as globex leaks acme's hook: %s", m, b)
			}
		}
		// the same upsert key under another tenant is another hook, and
		// acme's hook still works after globex's attempts
		status, _, b := call(t, tester, http.MethodPost, hookPath(t, push), nil, githubPush)
		if status != http.StatusOK {
			t.Fatalf("acme's hook after globex's delete attempt: %d %s", status, b)
		}
		// no credentials: basic_auth answers before the handler
		if status, _, _ := call(t, tester, http.MethodGet, "/wh/config", nil, ""); status != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d", status)
		}
		// a tenant placeholder that resolves to nothing
		status, _, b = call(t, tester, http.MethodGet, "/open/config", nil, "")
		if status != http.StatusUnauthorized || !errorJSON.Match(b) || !strings.Contains(string(b), "no tenant") {
			t.Fatalf("empty tenant: %d %s", status, b)
		}
		status, _, b = call(t, tester, http.MethodPost, "/open/config", nil, `{"datasource":"github","event":"push"}`)
		if status != http.StatusUnauthorized {
			t.Fatalf("POST with an empty tenant: %d %s", status, b)
		}
		// the open route names its tenant by header: same store, same issuer
		var list []issuedHook
		status, _, b = call(t, tester, http.MethodGet, "/open/config", http.Header{"X-Tenant": {"globex"}}, "")
		if status != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0].Token != theirs.Token {
			t.Fatalf("globex through the header route: %d %s", status, b)
		}
	})

	t.Run("bad bodies", func(t *testing.T) {
		for _, c := range []struct{ body, want string }{
			{`{"datasource":"github","event":"push","colour":"red"}`, `colour`},
			{`{"datasource":"github","event":"push","TSFIELD":"x"}`, `TSFIELD`},
			{`{"Datasource":"github","event":"push"}`, `Datasource`},
			{`null`, `JSON object`},
			{`{"datasource":"github","event":"push","tsField":"x"}}`, `malformed JSON`},
			{`{"datasource":"github","event":`, `malformed JSON`},
			{`{"datasource":"github" "event":"push"}`, `malformed JSON`},
			{`{"datasource":"github","event":"push"} {}`, `malformed JSON`},
			{`not json`, `malformed JSON`},
			{`[]`, `JSON object`},
			{`"push"`, `JSON object`},
			{`{"event":"push"}`, `"datasource" is required`},
			{`{"datasource":"","event":"push"}`, `"datasource" is required`},
			{`{"datasource":"github"}`, `"event" is required`},
			{`{"datasource":"github","event":null}`, `"event" is required`},
			{`{"datasource":5,"event":"push"}`, `"datasource" must be a string`},
			{`{"datasource":"github","event":"push","tsField":["a"]}`, `"tsField" must be a string`},
			{`{"datasource":"git.hub","event":"push"}`, `"datasource" must be`},
			{`{"datasource":"github","event":"push#"}`, `"event" must be`},
			{`{"datasource":"github","event":"push","tsField":"a\nb"}`, `"tsField" must be`},
			{`{"datasource":"` + strings.Repeat("d", 101) + `","event":"push"}`, `"datasource" must be`},
		} {
			status, _, b := call(t, tester, http.MethodPost, "/wh/config", acme, c.body)
			if status != http.StatusBadRequest || !errorJSON.Match(b) || !strings.Contains(string(b), strings.ReplaceAll(c.want, `"`, `\"`)) {
				t.Errorf("%s: %d %s, want 400 naming %s", c.body, status, b, c.want)
			}
		}
		status, _, b := call(t, tester, http.MethodPost, "/wh/config", acme, `{"datasource":"`+strings.Repeat("d", 70<<10)+`","event":"push"}`)
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("70 KiB body: %d %s", status, b)
		}
		status, hdr, _ := call(t, tester, http.MethodPut, "/wh/config", acme, `{}`)
		if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, POST" {
			t.Errorf("PUT on the collection: %d %v", status, hdr)
		}
		status, hdr, _ = call(t, tester, http.MethodPost, "/wh/config/"+push.Token, acme, `{"datasource":"github","event":"push"}`)
		if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD, DELETE" {
			t.Errorf("POST on a hook: %d %v", status, hdr)
		}
		var list []issuedHook
		_, _, b = call(t, tester, http.MethodGet, "/wh/config", acme, "")
		if json.Unmarshal(b, &list) != nil || len(list) != 3 {
			t.Fatalf("refused bodies changed the hooks: %s", b)
		}
	})

	t.Run("push reaches the forward with the issued placeholders", func(t *testing.T) {
		n := len(up.requests())
		status, _, b := call(t, tester, http.MethodPost, hookPath(t, push), http.Header{"X-Github-Event": {"push"}}, githubPush)
		if status != http.StatusOK {
			t.Fatalf("push: %d %s", status, b)
		}
		got := up.requests()
		if len(got) != n+1 {
			t.Fatalf("upstream got %d requests, want %d", len(got), n+1)
		}
		r := got[n]
		if r.path != "/events/acme" || r.header.Get("X-Tenant") != "acme" || r.header.Get("X-Datasource") != "github" ||
			r.header.Get("X-Event") != "push" || r.header.Get("X-Ts-Field") != "commits[0].timestamp" ||
			r.header.Get("X-Ts") != "2026-11-23T10:00:00+01:00" || string(r.body) != githubPush {
			t.Fatalf("forwarded %s %v %s", r.path, r.header, r.body)
		}
		// the gjson form, and another field, through a gate
		gatePath := func(h issuedHook) string { return strings.Replace(hookPath(t, h), "/wh/", "/gate/", 1) }
		for _, c := range []struct {
			h    issuedHook
			want string
		}{
			{push, "acme|github|push|commits[0].timestamp|2026-11-23T10:00:00+01:00"},
			{theirs, "globex|github|push|commits.1.timestamp|2026-11-23T11:00:00+01:00"},
			{release, "acme|github|release|head_commit.timestamp|2026-11-23T11:00:00+01:00"},
			{circle, "acme|circleci|workflow-completed||"},
		} {
			status, _, b := call(t, tester, http.MethodPost, gatePath(c.h), nil, githubPush)
			if status != http.StatusOK || string(b) != c.want {
				t.Errorf("gate for %s/%s: %d %q, want %q", c.h.TenantID, c.h.Event, status, b, c.want)
			}
		}
		// async mode stores the placeholder values with the event
		status, _, b = call(t, tester, http.MethodPost, strings.Replace(hookPath(t, theirs), "/wh/", "/async/", 1), nil, githubPush)
		if status != http.StatusAccepted {
			t.Fatalf("async: %d %s", status, b)
		}
		waitFor(t, "the async delivery", func() bool { return len(upAsync.requests()) == 1 })
		if r := upAsync.requests()[0]; r.path != "/async/globex" || r.header.Get("X-Event") != "push" || r.header.Get("X-Ts") != "2026-11-23T11:00:00+01:00" {
			t.Errorf("async delivery %s %v", r.path, r.header)
		}
		// another issuer's gate does not accept these hooks
		if status, _, b := call(t, tester, http.MethodPost, strings.Replace(hookPath(t, push), "/wh/", "/other/", 1), nil, githubPush); status != http.StatusUnauthorized {
			t.Errorf("other issuer: %d %s", status, b)
		}
	})

	t.Run("hostile tokens get 401", func(t *testing.T) {
		n := len(up.requests())
		flip := func(s string) string {
			if s[len(s)-1] == '0' {
				return s[:len(s)-1] + "1"
			}
			return s[:len(s)-1] + "0"
		}
		for _, p := range []string{
			"/wh/" + push.APIToken + "/" + flip(push.Token),
			"/wh/" + push.APIToken + "/" + strings.ToUpper(push.Token),
			"/wh/" + push.APIToken + "/" + push.Token[:39],
			"/wh/" + push.APIToken + "/" + push.Token + "0",
			"/wh/" + push.APIToken + "/" + strings.Repeat(push.Token, 30),
			"/wh/" + push.APIToken + "/" + strings.Repeat("z", 40),
			"/wh/" + push.APIToken + "/",
			"/wh/" + push.APIToken,
			"/wh/" + push.Token + "/" + push.APIToken,
			"/wh/" + theirs.APIToken + "/" + push.Token,
			"/wh/" + push.APIToken + "/" + theirs.Token,
			"/wh/" + push.APIToken + "/%2e%2e%2f" + push.Token,
			"/wh/" + push.APIToken + "%2F..%2F" + push.Token,
			"/wh/" + push.APIToken + "/.%2F" + push.Token,
			"/wh/" + push.APIToken + "/" + push.Token + "%00",
			"/wh/" + push.APIToken + "/" + push.Token + "%0a",
			"/wh/" + push.APIToken + "/%7Bhttp.request.uri%7D",
			"/wh/*/" + push.Token,
			"/wh/" + push.APIToken + ".%3E/" + push.Token,
			"/wh/config/" + push.Token,
		} {
			status, _, b := call(t, tester, http.MethodPost, p, nil, githubPush)
			if status != http.StatusUnauthorized || bytes.Contains(b, []byte(push.Token)) {
				t.Errorf("%.80s: %d %s, want 401", p, status, b)
			}
		}
		if got := len(up.requests()); got != n {
			t.Fatalf("hostile tokens reached the upstream: %d requests", got-n)
		}
	})

	t.Run("delete", func(t *testing.T) {
		status, _, b := call(t, tester, http.MethodDelete, "/wh/config/"+release.Token, acme, "")
		if status != http.StatusNoContent || len(b) != 0 {
			t.Fatalf("delete: %d %s", status, b)
		}
		status, _, b = call(t, tester, http.MethodPost, hookPath(t, release), nil, githubPush)
		if status != http.StatusUnauthorized {
			t.Fatalf("deleted hook's URL: %d %s", status, b)
		}
		if status, _, _ = call(t, tester, http.MethodHead, "/wh/config/"+release.Token, acme, ""); status != http.StatusNotFound {
			t.Fatalf("HEAD of a deleted hook: %d", status)
		}
		if status, _, _ = call(t, tester, http.MethodDelete, "/wh/config/"+release.Token, acme, ""); status != http.StatusNotFound {
			t.Fatalf("second delete: %d", status)
		}
		var list []issuedHook
		_, _, b = call(t, tester, http.MethodGet, "/wh/config", acme, "")
		if json.Unmarshal(b, &list) != nil || len(list) != 2 || list[0] != circle || list[1] != push {
			t.Fatalf("list after delete: %s", b)
		}
		// created again: a new URL; the old one stays dead
		again := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"release"}`)
		if again.Token == release.Token || again.APIToken == release.APIToken {
			t.Fatalf("re-created hook reuses tokens: %+v", again)
		}
		if status, _, _ = call(t, tester, http.MethodPost, hookPath(t, release), nil, githubPush); status != http.StatusUnauthorized {
			t.Fatalf("old URL after re-creation: %d", status)
		}
		if status, _, b = call(t, tester, http.MethodPost, strings.Replace(hookPath(t, again), "/wh/", "/gate/", 1), nil, githubPush); status != http.StatusOK {
			t.Fatalf("new URL: %d %s", status, b)
		}
	})
}

// TestIssuedHooksPrefix: with a path matcher on the directive, paths are
// relative to it; anything else under it is 404.
func TestIssuedHooksPrefix(t *testing.T) {
	tester, _ := asyncCaddy(t, "", `
http://localhost:9080 {
	route /api/hooks* {
		webhook_gateway_tokens /api/hooks* {
			issuer   prefixed
			tenant   {http.request.header.X-Tenant}
			hook_url http://{http.request.hostport}/in/{api_token}/{token}
		}
	}
}
`)
	tenant := http.Header{"X-Tenant": {"acme"}}
	h := createHook(t, tester, "/api/hooks", tenant, `{"datasource":"dockerhub","event":"push"}`)
	if h.HookURL != fmt.Sprintf("%s/in/%s/%s", gatewayURL(), h.APIToken, h.Token) {
		t.Fatalf("hookUrl %s", h.HookURL)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/api/hooks", 200},
		{http.MethodGet, "/api/hooks/", 200},
		{http.MethodGet, "/api/hooks/" + h.Token, 200},
		{http.MethodHead, "/api/hooks/" + h.Token, 200},
		{http.MethodGet, "/api/hooks/not-a-token", 404},
		{http.MethodHead, "/api/hooks/not-a-token", 404},
		{http.MethodGet, "/api/hooks/" + h.Token + "/more", 404},
		{http.MethodGet, "/api/hooksmith", 404},
		{http.MethodHead, "/api/hooks", 405},
		{http.MethodDelete, "/api/hooks", 405},
	} {
		if status, _, b := call(t, tester, c.method, c.path, tenant, ""); status != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, status, b, c.want)
		}
	}
}

// TestIssuedHooksNATS: on the NATS store, behind forward_auth, a hook
// created through Caddy is seen at once by another instance on the same
// cluster, a hook that instance creates works through Caddy at once, and
// one it deletes stops working at once; a second config on the same
// store sees the same hooks.
func TestIssuedHooksNATS(t *testing.T) {
	ns := natstest.Start(t)
	// a token service: a bearer token names the tenant
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

	site := func(hookRoute string) string {
		return strings.Replace(globalOptions, "auto_https off", fmt.Sprintf(
			"auto_https off\n\twebhook_gateway {\n\t\tstore nats %s {\n\t\t\tstream issuedtest\n\t\t\treplicas 1\n\t\t}\n\t}", ns.ClientURL()), 1) +
			fmt.Sprintf(`
http://localhost:9080 {
	handle /wh/config* {
		forward_auth %s {
			uri /validate
			copy_headers X-Tenant-Id
		}
		webhook_gateway_tokens {
			issuer   github-hooks
			tenant   {http.request.header.X-Tenant-Id}
			hook_url http://{http.request.hostport}/%s/{api_token}/{token}
		}
	}
	handle /%s/* {
		webhook_gateway {
			name nats-issued
			auth issued github-hooks {path.1} {path.2}
		}
		respond "{http.webhook_gateway.issued.tenant} {http.webhook_gateway.issued.event} {http.webhook_gateway.issued.ts}"
	}
}
`, sts.URL, hookRoute, hookRoute)
	}
	tester := newTester(t)
	tester.InitServer(withPorts(site("wh")), "caddyfile")
	t.Cleanup(func() { tester.InitServer(withPorts(globalOptions), "caddyfile") })

	acme := http.Header{"Authorization": {"Bearer acme-token"}}
	// a tenant header sent by the caller is replaced by the token
	// service's answer
	spoof := http.Header{"Authorization": {"Bearer acme-token"}, "X-Tenant-Id": {"globex"}}
	h := createHook(t, tester, "/wh/config", spoof, `{"datasource":"github","event":"push","tsField":"commits[0].timestamp"}`)
	if h.TenantID != "acme" {
		t.Fatalf("tenant %q, want acme from the token service", h.TenantID)
	}
	if status, _, _ := call(t, tester, http.MethodGet, "/wh/config", http.Header{"X-Tenant-Id": {"acme"}}, ""); status != http.StatusUnauthorized {
		t.Fatalf("no bearer token: %d", status)
	}

	// another instance on the same cluster
	other, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: []string{ns.ClientURL()}, Stream: "issuedtest", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	got, err := other.HookByTokens(context.Background(), "github-hooks", h.APIToken, h.Token)
	if err != nil || got.Tenant != "acme" || got.Datasource != "github" || got.TSField != "commits[0].timestamp" {
		t.Fatalf("other instance: %+v %v", got, err)
	}
	created, err := other.PutHook(context.Background(), queue.IssuedHook{Issuer: "github-hooks", Tenant: "globex", Datasource: "github", Event: "release"}, false)
	if err != nil {
		t.Fatal(err)
	}
	status, _, b := call(t, tester, http.MethodPost, "/wh/"+created.APIToken+"/"+created.Token, nil, githubPush)
	if status != http.StatusOK || string(b) != "globex release " {
		t.Fatalf("hook created by the other instance: %d %q", status, b)
	}
	var list []issuedHook
	status, _, b = call(t, tester, http.MethodGet, "/wh/config", http.Header{"Authorization": {"Bearer globex-token"}}, "")
	if status != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0].Token != created.Token {
		t.Fatalf("globex's list: %d %s", status, b)
	}
	if err := other.DeleteHook(context.Background(), "github-hooks", "globex", created.Token); err != nil {
		t.Fatal(err)
	}
	if status, _, b = call(t, tester, http.MethodPost, "/wh/"+created.APIToken+"/"+created.Token, nil, githubPush); status != http.StatusUnauthorized {
		t.Fatalf("hook deleted by the other instance: %d %s", status, b)
	}

	// a second config on the same store
	tester.InitServer(withPorts(site("hooks")), "caddyfile")
	status, _, b = call(t, tester, http.MethodPost, "/hooks/"+h.APIToken+"/"+h.Token, nil, githubPush)
	if status != http.StatusOK || string(b) != "acme push 2026-11-23T10:00:00+01:00" {
		t.Fatalf("second config: %d %q", status, b)
	}
	var one issuedHook
	status, _, b = call(t, tester, http.MethodGet, "/wh/config/"+h.Token, acme, "")
	if status != http.StatusOK || json.Unmarshal(b, &one) != nil || one.Token != h.Token ||
		one.HookURL != fmt.Sprintf("%s/hooks/%s/%s", gatewayURL(), h.APIToken, h.Token) {
		t.Fatalf("get through the second config: %d %s", status, b)
	}
	status, _, _ = call(t, tester, http.MethodDelete, "/wh/config/"+h.Token, acme, "")
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if _, err := other.HookByTokens(context.Background(), "github-hooks", h.APIToken, h.Token); err == nil {
		t.Fatal("the other instance still finds the deleted hook")
	}

	// the store goes away: no verdict, so 503, not 401
	live := createHook(t, tester, "/wh/config", acme, `{"datasource":"github","event":"push"}`)
	ns.Shutdown()
	ns.WaitForShutdown()
	status, hdr, b := call(t, tester, http.MethodPost, "/hooks/"+live.APIToken+"/"+live.Token, nil, githubPush)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("push with the store down: %d %s", status, b)
	}
	status, _, b = call(t, tester, http.MethodGet, "/wh/config", acme, "")
	if status != http.StatusServiceUnavailable || strings.Contains(string(b), "nats") {
		t.Errorf("list with the store down: %d %s", status, b)
	}
}

// TestReadmeIssuedHooks runs the README's issued hooks block: a token
// service behind forward_auth names the tenant, a hook pushed to reaches
// the app with the issued placeholders, and the access log filter keeps
// the token out of the log.
func TestReadmeIssuedHooks(t *testing.T) {
	block := readmeBlock(t, "request>uri regexp")
	app := newUpstream(t, nil)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/validate" || r.Header.Get("Authorization") != "Bearer acme-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Tenant-Id", "acme")
	}))
	t.Cleanup(sts.Close)
	logFile := t.TempDir() + "/access.log"
	site := strings.NewReplacer(
		"hooks.example.com {", "http://localhost:9080 {",
		"log {", fmt.Sprintf("log {\n\t\toutput file %q", logFile),
		"https://{http.request.host}", "http://{http.request.hostport}",
		"localhost:8081", strings.TrimPrefix(sts.URL, "http://"),
		"localhost:3000", app.addr(),
	).Replace(block)
	tester, _ := asyncCaddy(t, "", site)

	h := createHook(t, tester, "/wh/config", http.Header{"Authorization": {"Bearer acme-token"}},
		`{"datasource":"github","event":"push","tsField":"commits[0].timestamp"}`)
	if h.TenantID != "acme" {
		t.Fatalf("hook %+v", h)
	}
	if status, _, _ := call(t, tester, http.MethodHead, "/wh/config/"+h.Token, http.Header{"Authorization": {"Bearer acme-token"}}, ""); status != http.StatusOK {
		t.Fatalf("HEAD: %d", status)
	}
	if status, _, b := call(t, tester, http.MethodPost, hookPath(t, h), nil, githubPush); status != http.StatusOK {
		t.Fatalf("push: %d %s", status, b)
	}
	got := app.requests()
	if len(got) != 1 || got[0].path != "/events/acme" || got[0].header.Get("X-Datasource") != "github" ||
		got[0].header.Get("X-Event") != "push" || got[0].header.Get("X-Event-Time") != "2026-11-23T10:00:00+01:00" {
		t.Fatalf("app got %+v", got)
	}
	var log []byte
	waitFor(t, "the access log lines", func() bool {
		log, _ = os.ReadFile(logFile)
		return bytes.Count(log, []byte(`"uri":`)) >= 3
	})
	if bytes.Contains(log, []byte(h.Token)) {
		t.Errorf("the token is in the access log: %s", log)
	}
	if !bytes.Contains(log, []byte("/wh/"+h.APIToken+"/REDACTED")) || !bytes.Contains(log, []byte("/wh/config/REDACTED")) {
		t.Errorf("the access log lost the rest of the URIs: %s", log)
	}
}
