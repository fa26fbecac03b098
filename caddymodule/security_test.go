package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestForwardPathValuesRefused (finding 1): a payload value that would
// climb or split the forward URL's path is refused with 422 naming the
// field, in sync, fan-out and async mode, and the upstream sees nothing.
func TestForwardPathValuesRefused(t *testing.T) {
	up := newUpstream(t, nil)
	other := newUpstream(t, nil)
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /sync {
		auth api_key k
		forward %[1]s/api/tenants/{http.webhook_gateway.json.tenant}/{http.webhook_gateway.json.kind} {
			retries 0
		}
	}
	webhook_gateway /fan {
		auth api_key k
		forward %[2]s/audit {
			retries 0
		}
		forward %[1]s/api/tenants/{http.webhook_gateway.json.tenant}/{http.webhook_gateway.json.kind} {
			retries 0
		}
	}
	webhook_gateway /async {
		auth api_key k
		mode async
		forward %[1]s/api/tenants/{http.webhook_gateway.json.tenant}/{http.webhook_gateway.json.kind}
	}
	webhook_gateway /header {
		auth api_key k
		forward %[1]s/api/tenants/{http.request.header.X-Tenant}/x {
			retries 0
		}
	}
	webhook_gateway /short {
		auth api_key k
		forward %[1]s/api/tenants/{json.tenant}/{json.kind} {
			retries 0
			header X-Tenant {json.tenant}
		}
	}
}
`, up.URL, other.URL))

	key := http.Header{"X-Api-Key": {"k"}}
	cases := []struct{ body, field, secret string }{
		{`{"tenant":"..","kind":"admin"}`, "tenant", ""},
		{`{"tenant":"acme","kind":".."}`, "kind", ""},
		{`{"tenant":".","kind":"admin"}`, "tenant", ""},
		{`{"tenant":"%2e%2e","kind":"admin"}`, "tenant", "%2e%2e"},
		{`{"tenant":"%2E%2E%2Fadmin","kind":"x"}`, "tenant", "%2E%2E%2Fadmin"},
		{`{"tenant":"a/b","kind":"x"}`, "tenant", "a/b"},
		{`{"tenant":"../admin","kind":"x"}`, "tenant", "../admin"},
		{`{"tenant":"..\\admin","kind":"x"}`, "tenant", "admin"},
		{`{"tenant":"","kind":"admin"}`, "tenant", ""},
		{`{"kind":"admin"}`, "tenant", ""},
		{`{"tenant":"a\u0000b","kind":"x"}`, "tenant", ""},
		{`{"tenant":"a\r\nHost: evil","kind":"x"}`, "tenant", "evil"},
		{`{"tenant":"\uff0e\uff0e","kind":"admin"}`, "tenant", ""},
		{`{"tenant":"\u2025","kind":"admin"}`, "tenant", ""},
		{`{"tenant":"a\uff0fb","kind":"x"}`, "tenant", ""},
		{`"just a string"`, "tenant", ""},
		{`{"tenant":"..;","kind":"admin"}`, "tenant", ""},
		{`{"tenant":"...","kind":"admin"}`, "tenant", ""},
		{`{"tenant":".. ","kind":"admin"}`, "tenant", ""},
	}
	for _, hook := range []string{"/sync", "/fan", "/async", "/short"} {
		for _, tc := range cases {
			status, _, body := post(t, tester, hook, "application/json", key, []byte(tc.body))
			if status != http.StatusUnprocessableEntity {
				t.Errorf("%s %s: status %d %s, want 422", hook, tc.body, status, body)
				continue
			}
			var e struct{ Error string }
			if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, `field "`+tc.field+`"`) {
				t.Errorf("%s %s: error %s does not name the field %q", hook, tc.body, body, tc.field)
			}
			if tc.secret != "" && bytes.Contains(body, []byte(tc.secret)) {
				t.Errorf("%s %s: error echoes the value: %s", hook, tc.body, body)
			}
		}
	}
	status, _, body := post(t, tester, "/header", "application/json", key, []byte(`{}`))
	if status != http.StatusUnprocessableEntity || !bytes.Contains(body, []byte("placeholder {http.request.header.X-Tenant}")) {
		t.Errorf("missing header: %d %s", status, body)
	}
	h := http.Header{"X-Api-Key": {"k"}, "X-Tenant": {".."}}
	if status, _, body := post(t, tester, "/header", "application/json", h, []byte(`{}`)); status != http.StatusUnprocessableEntity {
		t.Errorf("header ..: %d %s", status, body)
	}
	if n, m := len(up.requests()), len(other.requests()); n != 0 || m != 0 {
		t.Fatalf("upstreams saw %d and %d requests, want none: %+v", n, m, up.requests())
	}

	// plain values still go where they should; the one async event
	// accepted is the only one stored for delivery (each refusal is a
	// rejected record of the run log, never delivered)
	status, _, body = post(t, tester, "/sync", "application/json", key, []byte(`{"tenant":"acme corp","kind":"v1.2"}`))
	if status != http.StatusOK {
		t.Fatalf("plain values: %d %s", status, body)
	}
	if got := up.requests(); len(got) != 1 || got[0].rawURI != "/api/tenants/acme%20corp/v1.2" {
		t.Errorf("upstream saw %+v", got)
	}
	// the form: {json.x} in the forward URL and headers
	status, _, body = post(t, tester, "/short", "application/json", key, []byte(`{"tenant":"acme","kind":"admin"}`))
	if got := up.requests(); status != http.StatusOK || len(got) != 2 || got[1].rawURI != "/api/tenants/acme/admin" || got[1].header.Get("X-Tenant") != "acme" {
		t.Fatalf("{json.x} shorthand: %d %s, upstream saw %+v", status, body, got[1:])
	}
	status, _, body = post(t, tester, "/async", "application/json", key, []byte(`{"tenant":"acme","kind":"orders"}`))
	if status != http.StatusAccepted {
		t.Fatalf("plain values, async: %d %s", status, body)
	}
	var list struct {
		Events []eventView `json:"events"`
	}
	// the rejected records are written in the background
	deliverable, refused := 0, 0
	waitFor(t, "the rejected records", func() bool {
		adminGet(t, "/webhook_gateway/events?hook=async&limit=100", &list)
		deliverable, refused = 0, 0
		for _, ev := range list.Events {
			if ev.Status == "rejected" && ev.Action == -1 {
				refused++
			} else {
				deliverable++
			}
		}
		return refused >= len(cases)
	})
	if deliverable != 1 || refused != len(cases) {
		t.Errorf("stored events %+v, want the one accepted and %d rejected records", list.Events, len(cases))
	}
	waitFor(t, "the async delivery", func() bool { return len(up.requests()) == 3 })
	if got := up.requests()[2].rawURI; got != "/api/tenants/acme/orders" {
		t.Errorf("async delivery went to %q", got)
	}
}

// TestGateStripsCredentials (finding 2): in gate mode the next handler
// gets the request without the credential it was authenticated with, and
// a forward action's placeholders cannot copy it; pass_credentials keeps
// it.
func TestGateStripsCredentials(t *testing.T) {
	app := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /query {
		auth api_key qkey-secret {
			query key
		}
	}
	webhook_gateway /header {
		auth api_key hkey-secret
	}
	webhook_gateway /custom {
		auth api_key ckey-secret {
			header X-Hook-Token
		}
	}
	webhook_gateway /bearer {
		auth api_key bkey-secret {
			bearer
		}
	}
	webhook_gateway /basic {
		auth basic hook basic-secret
	}
	webhook_gateway /gitlab {
		auth gitlab gitlab-secret
	}
	webhook_gateway /github {
		auth github %[2]q
	}
	webhook_gateway /pass {
		auth api_key pkey-secret {
			query key
		}
		pass_credentials
	}
	webhook_gateway /passheader {
		auth api_key phkey-secret
		pass_credentials
	}
	webhook_gateway /forward {
		auth api_key fkey-secret {
			query key
		}
		forward http://%[1]s/forwarded?orig={http.request.uri.query} {
			header X-Seen-Uri {http.request.uri}
		}
	}
	reverse_proxy %[1]s {
		header_up X-Seen-Uri {http.request.uri}
	}
}
`, app.addr(), ghSecret))

	body := []byte(`{"a":1}`)
	type sent struct {
		path   string
		header http.Header
		// after: what the app must see
		wantURI      string
		gone, kept   []string // header names
		secret, keep string   // must not / must appear in what the app got
	}
	cases := []sent{
		{path: "/query?x=1&key=qkey-secret&y=%2F&key=qkey-secret", wantURI: "/query?x=1&y=%2F", secret: "qkey-secret"},
		{path: "/query?key=qkey-secret", wantURI: "/query", secret: "qkey-secret"},
		{path: "/query?k%65y=qkey-secret&z=1", wantURI: "/query?z=1", secret: "qkey-secret"},
		{path: "/header?x=1", header: http.Header{"X-Api-Key": {"hkey-secret"}, "X-Other": {"o"}}, wantURI: "/header?x=1", gone: []string{"X-Api-Key"}, kept: []string{"X-Other"}, secret: "hkey-secret"},
		{path: "/custom", header: http.Header{"X-Hook-Token": {"ckey-secret"}, "X-Api-Key": {"other"}}, wantURI: "/custom", gone: []string{"X-Hook-Token"}, kept: []string{"X-Api-Key"}, secret: "ckey-secret"},
		{path: "/bearer", header: http.Header{"Authorization": {"Bearer bkey-secret"}}, wantURI: "/bearer", gone: []string{"Authorization"}, secret: "bkey-secret"},
		{path: "/basic", header: basicHeader("hook:basic-secret"), wantURI: "/basic", gone: []string{"Authorization"}, secret: "aG9vazpiYXNpYy1zZWNyZXQ"},
		{path: "/gitlab", header: http.Header{"X-Gitlab-Token": {"gitlab-secret"}}, wantURI: "/gitlab", gone: []string{"X-Gitlab-Token"}, secret: "gitlab-secret"},
		{path: "/github", header: http.Header{"X-Hub-Signature-256": {githubSignature(ghSecret, body)}}, wantURI: "/github", kept: []string{"X-Hub-Signature-256"}},
		{path: "/forward?key=fkey-secret&n=2", wantURI: "/forwarded?orig=n%3D2", secret: "fkey-secret"},
		{path: "/pass?key=pkey-secret", wantURI: "/pass?key=pkey-secret", keep: "pkey-secret"},
		{path: "/passheader", header: http.Header{"X-Api-Key": {"phkey-secret"}}, wantURI: "/passheader", kept: []string{"X-Api-Key"}, keep: "phkey-secret"},
	}
	for _, tc := range cases {
		before := len(app.requests())
		status, _, rb := post(t, tester, tc.path, "application/json", tc.header, body)
		if status != http.StatusOK {
			t.Errorf("%s: status %d %s", tc.path, status, rb)
			continue
		}
		got := app.requests()
		if len(got) != before+1 {
			t.Fatalf("%s: app saw %d new requests", tc.path, len(got)-before)
		}
		r := got[len(got)-1]
		seen := tc.wantURI
		if tc.path == "/forward?key=fkey-secret&n=2" {
			seen = "/forward?n=2"
		}
		if r.rawURI != tc.wantURI || r.header.Get("X-Seen-Uri") != seen {
			t.Errorf("%s: app got URI %q ({http.request.uri} %q), want %q", tc.path, r.rawURI, r.header.Get("X-Seen-Uri"), tc.wantURI)
		}
		for _, name := range tc.gone {
			if v, ok := r.header[http.CanonicalHeaderKey(name)]; ok {
				t.Errorf("%s: app got %s: %q", tc.path, name, v)
			}
		}
		for _, name := range tc.kept {
			if r.header.Get(name) == "" || r.header.Get(name) != tc.header.Get(name) {
				t.Errorf("%s: app got %s %q, want %q", tc.path, name, r.header.Get(name), tc.header.Get(name))
			}
		}
		var all bytes.Buffer
		all.WriteString(r.rawURI)
		_ = r.header.Write(&all)
		if tc.secret != "" && strings.Contains(all.String(), tc.secret) {
			t.Errorf("%s: the credential reached the app: %s", tc.path, all.String())
		}
		if tc.keep != "" && !strings.Contains(all.String(), tc.keep) {
			t.Errorf("%s: pass_credentials lost the credential: %s", tc.path, all.String())
		}
	}
}

// readmeBlock returns the ```caddyfile block of README.md that contains
// marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range strings.Split(string(readme), "```caddyfile\n")[1:] {
		block, _, _ := strings.Cut(chunk, "```")
		if strings.Contains(block, marker) {
			return block
		}
	}
	t.Fatalf("README.md has no caddyfile block with %q", marker)
	return ""
}

// TestReadmeAccessLogFilter (finding 2): the README's access log filter
// adapts, loads and keeps the key out of the access log, and the gate
// keeps it from the upstream.
func TestReadmeAccessLogFilter(t *testing.T) {
	block := readmeBlock(t, "format filter")
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(block), nil); err != nil {
		t.Fatalf("README access log block does not adapt: %v", err)
	}
	app := newUpstream(t, nil)
	logFile := filepath.Join(t.TempDir(), "access.log")
	const key = "readme-query-key-0001"
	site := strings.NewReplacer(
		"example.com {", "http://localhost:9080 {",
		"log {", fmt.Sprintf("log {\n\t\toutput file %q", logFile),
		"{env.HOOK_KEY}", key,
		"localhost:3000", app.addr(),
	).Replace(block)
	tester := startCaddy(t, site)

	hdr := http.Header{"X-Api-Key": {"header-key-0002"}}
	status, _, body := post(t, tester, "/hooks/a?key="+key+"&n=1", "application/json", hdr, []byte(`{}`))
	if status != http.StatusOK {
		t.Fatalf("status %d %s", status, body)
	}
	if got := app.requests(); len(got) != 1 || got[0].rawURI != "/hooks/a?n=1" {
		t.Fatalf("app got %+v", got)
	}
	var log []byte
	waitFor(t, "the access log line", func() bool {
		log, _ = os.ReadFile(logFile)
		return bytes.Contains(log, []byte(`"uri":`))
	})
	if bytes.Contains(log, []byte(key)) || bytes.Contains(log, []byte("header-key-0002")) {
		t.Errorf("a key is in the access log: %s", log)
	}
	if !bytes.Contains(log, []byte("/hooks/a?n=1")) {
		t.Errorf("the access log lost the rest of the URI: %s", log)
	}
}

// TestReadmeRouteForms (finding 12): the README's safe route form gates,
// and its unsafe form shows why the README warns about it.
func TestReadmeRouteForms(t *testing.T) {
	block := readmeBlock(t, "UNSAFE")
	safe, unsafe, ok := strings.Cut(block, "# UNSAFE")
	_, unsafe, _ = strings.Cut(unsafe, "\n") // the rest of the comment line
	if !ok || !strings.Contains(safe, "# safe") {
		t.Fatalf("README route block is not safe form then unsafe form:\n%s", block)
	}
	app := newUpstream(t, nil)
	prep := func(form, path string) string {
		return strings.NewReplacer(
			"/hooks/github", path,
			"{env.GITHUB_WEBHOOK_SECRET}", fmt.Sprintf("%q", ghSecret),
			"localhost:9001", app.addr(),
		).Replace(form)
	}
	tester := startCaddy(t, "http://localhost:9080 {\n"+prep(safe, "/safe")+prep(unsafe, "/unsafe")+"\n}\n")

	body := []byte(`{"action":"opened"}`)
	if status, _, _ := post(t, tester, "/safe", "application/json", nil, body); status != http.StatusUnauthorized || len(app.requests()) != 0 {
		t.Errorf("safe form, unsigned: status %d, app saw %d requests; want 401 and none", status, len(app.requests()))
	}
	signed := http.Header{"X-Hub-Signature-256": {githubSignature(ghSecret, body)}}
	if status, _, _ := post(t, tester, "/safe", "application/json", signed, body); status != http.StatusOK || len(app.requests()) != 1 {
		t.Errorf("safe form, signed: status %d, app saw %d requests", status, len(app.requests()))
	}
	if status, _, _ := post(t, tester, "/unsafe", "application/json", nil, body); status != http.StatusOK || len(app.requests()) != 2 {
		t.Errorf("unsafe form, unsigned: status %d; the README says it passes (app saw %d)", status, len(app.requests()))
	}
}

// TestSyncAnswerTooLarge (finding 10): an upstream answer over 1 MiB is
// never passed on cut; the sender gets 502 saying why.
func TestSyncAnswerTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2<<20)
	exact := bytes.Repeat([]byte("y"), 1<<20)
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(`{"data":"`))
			_, _ = w.Write(big)
			_, _ = w.Write([]byte(`"}`))
		case "/chunked":
			for i := 0; i < 4; i++ {
				_, _ = w.Write(big[:512<<10])
				w.(http.Flusher).Flush()
			}
			_, _ = w.Write([]byte("z"))
		default:
			_, _ = w.Write(exact)
		}
	})
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /big {
		forward %[1]s/big
	}
	webhook_gateway /chunked {
		forward %[1]s/chunked
	}
	webhook_gateway /exact {
		forward %[1]s/exact
	}
}
`, up.URL))
	for _, path := range []string{"/big", "/chunked"} {
		status, hdr, body := post(t, tester, path, "application/json", nil, []byte(`{}`))
		if status != http.StatusBadGateway {
			t.Errorf("%s: status %d (Content-Length %s, %d bytes), want 502", path, status, hdr.Get("Content-Length"), len(body))
			continue
		}
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "larger than 1 MiB") {
			t.Errorf("%s: error body %.200s", path, body)
		}
	}
	status, _, body := post(t, tester, "/exact", "application/json", nil, []byte(`{}`))
	if status != http.StatusOK || !bytes.Equal(body, exact) {
		t.Errorf("/exact: status %d, %d bytes, want 200 and the whole 1 MiB", status, len(body))
	}
	if n := len(up.requests()); n != 3 {
		t.Errorf("upstream saw %d requests, want 3 (no retry of a too large answer)", n)
	}
}

// TestForwardRefusedAtLoad (finding 11, and the same class found in the
// second pass): a forward that could never be sent (a port out of range,
// a header name Go will not send) is a load error, not a request-time 502
// after every retry.
func TestForwardRefusedAtLoad(t *testing.T) {
	cases := []struct{ forward, want string }{
		{"forward http://localhost:99999/x", "port"},
		{"forward http://localhost:0/x", "port"},
		{"forward http://localhost:/x", "port"},
		{"forward http://[::1]:65536/", "port"},
		{"forward http://localhost/x {\n\t\t\theader \"X Bad\" v\n\t\t}", "header name"},
		{"forward http://localhost/x {\n\t\t\theader X:Bad v\n\t\t}", "header name"},
		{"forward http://localhost/x {\n\t\t\theader X-Ok{json.a} v\n\t\t}", "header name"},
		{"forward http://localhost/x {\n\t\t\tmethod \"PO ST\"\n\t\t}", "method"},
		{"forward http://localhost/x {\n\t\t\tsign hmac s {\n\t\t\t\theader \"X Sig\"\n\t\t\t}\n\t\t}", "header name"},
	}
	for _, tc := range cases {
		cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway {
		%s
	}
}
`, tc.forward)), nil)
		if err != nil {
			t.Fatalf("%s: adapt: %v", tc.forward, err)
		}
		var cfg caddy.Config
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			t.Fatal(err)
		}
		err = caddy.Validate(&cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: load error %v, want one about the %s", tc.forward, err, tc.want)
		}
	}
}

// TestForwardHeaderPlaceholders: payload values in forward headers cannot
// split or add headers, and cannot copy the sender's checked credential.
func TestForwardHeaderPlaceholders(t *testing.T) {
	up := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /h {
		auth basic hook hdr-basic-secret
		forward %s/x {
			header X-Tenant {http.webhook_gateway.json.t}
			header X-Copy "{http.request.header.Authorization}|{http.request.header.X-Extra}"
		}
	}
}
`, up.URL))
	hdr := basicHeader("hook:hdr-basic-secret")
	hdr.Set("X-Extra", "extra")
	status, _, body := post(t, tester, "/h", "application/json", hdr,
		[]byte(`{"t":"a\r\nX-Injected: 1\r\n\r\nGET / HTTP/1.1\u0000\u007fb\tc"}`))
	if status != http.StatusOK {
		t.Fatalf("status %d %s", status, body)
	}
	got := up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream saw %d requests", len(got))
	}
	h := got[0].header
	if v := h.Get("X-Tenant"); v != "aX-Injected: 1GET / HTTP/1.1b\tc" {
		t.Errorf("X-Tenant %q", v)
	}
	if _, ok := h["X-Injected"]; ok || got[0].method != http.MethodPost || got[0].path != "/x" {
		t.Errorf("a payload value split the request: %s %s %v", got[0].method, got[0].path, h)
	}
	if v := h.Get("X-Copy"); v != "|extra" {
		t.Errorf("X-Copy %q: the checked Authorization must not be copied", v)
	}
}
