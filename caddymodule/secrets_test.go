package caddymodule_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// Every value the secrets test configures or sends as a credential. Each
// is distinctive so a leak is found by a plain substring search.
const (
	secBasicPass   = "bp-Zq81-basic-password"
	secAPIKey      = "ak-7Hc2-inbound-api-key"
	secQueryKey    = "qk-M4x9-inbound-query-key"
	secGateKey     = "gk-Pp03-gate-api-key"
	secHMAC        = "hm-Rt55-inbound-hmac-secret"
	secGitHub      = "gh-Wn12-inbound-github-secret"
	secStripe      = "whsec_st-Kv66-inbound-stripe"
	secOutBearer   = "ob-Jd48-outbound-bearer-token"
	secOutHeader   = "oh-Ye29-outbound-header-key"
	secEnvHeader   = "oe-Bn71-outbound-env-key"
	secOutGitHub   = "og-Lx30-outbound-github-secret"
	secOutHMAC     = "oc-Fa84-outbound-hmac-secret"
	secURLToken    = "ut-Qe57-outbound-url-token"
	secURLPassword = "up-Hs62-outbound-url-password"
	secWrongKey    = "wk-Gm19-wrong-key-sent"
	secWrongPass   = "wp-Cz05-wrong-password-sent"
	secBodyMarker  = "BODY-Nv93-raw-body-marker"
)

var secOutStandard = "whsec_" + base64.StdEncoding.EncodeToString([]byte("oS-Tu44-outbound-standard-key!!"))

func secretsSite(up *upstream, hang *upstream, refused string) string {
	return fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /basic {
		auth basic hook %[1]q
		forward %[2]s/basic {
			header Authorization "Bearer %[3]s"
			sign github %[4]q
		}
	}
	webhook_gateway /key {
		auth api_key %[5]q
		forward %[2]s/key {
			header X-Store-Key {env.WEBHOOK_SECRETS_TEST_KEY}
			sign standard %[6]q
		}
	}
	webhook_gateway /keyq {
		auth api_key %[7]q {
			query token
		}
		forward "%[2]s/keyq?token=%[8]s"
	}
	webhook_gateway /hmac {
		auth hmac %[9]q {
			header X-Signature
			algorithm sha512
			encoding base64
			timestamp_header X-Timestamp
			signed "{timestamp}.{body}"
		}
		forward %[2]s/hmac {
			sign hmac %[10]q {
				header X-Out-Sig
			}
		}
	}
	webhook_gateway /github {
		auth github %[11]q
		forward http://hook:%[12]s@%[13]s/down {
			retries 1
			backoff 1ms 2ms
		}
	}
	webhook_gateway /stripe {
		auth stripe %[14]q
		forward %[2]s/stripe {
			header X-Api-Key %[15]q
		}
	}
	webhook_gateway /slow {
		auth api_key %[5]q
		forward %[16]s/slow {
			header X-Api-Key %[15]q
			timeout 100ms
			retries 0
		}
	}
	webhook_gateway /gate {
		auth api_key %[17]q
	}
	respond "gate passed" 200
}
`, secBasicPass, up.URL, secOutBearer, secOutGitHub, secAPIKey, secOutStandard, secQueryKey, secURLToken,
		secHMAC, secOutHMAC, secGitHub, secURLPassword, refused, secStripe, secOutHeader, hang.URL, secGateKey)
}

// startCaddyLogging starts Caddy like startCaddy, with every logger at
// DEBUG writing JSON lines to logFile.
func startCaddyLogging(t *testing.T, logFile, sites string) *caddytest.Tester {
	t.Helper()
	global := fmt.Sprintf(`{
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
}
`, logFile)
	tester := newTester(t)
	tester.InitServer(withPorts(global+sites), "caddyfile")
	return tester
}

func hmacSHA512Base64(key, msg string) string {
	m := hmac.New(sha512.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestNoSecretInLogsOrBodies runs good and bad requests against every
// auth method and the outbound credentials with DEBUG logging captured,
// and finds no secret, credential, signature or body bytes in any log
// line or response body.
func TestNoSecretInLogsOrBodies(t *testing.T) {
	t.Setenv("WEBHOOK_SECRETS_TEST_KEY", secEnvHeader)
	up := newUpstream(t, nil)
	hang := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := startCaddyLogging(t, logFile, secretsSite(up, hang, refused))

	good := []byte(`{"marker":"` + secBodyMarker + `","pet":{"name":"Gromit"}}`)
	badJSON := []byte(`{"marker":"` + secBodyMarker + `", oops}`)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	ghGood := githubSignature(secGitHub, good)
	ghBadJSON := githubSignature(secGitHub, badJSON)
	hmacGood := hmacSHA512Base64(secHMAC, now+"."+string(good))
	stripeGood := "t=" + now + ",v1=" + hex256(secStripe, now+"."+string(good))
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}

	// sentSecrets are the credentials requests carry; none may be logged.
	sentSecrets := []string{
		ghGood, ghBadJSON, hmacGood, strings.TrimPrefix(ghGood, "sha256="), stripeGood,
		basic("hook", secBasicPass), basic("hook", secWrongPass),
	}

	type call struct {
		path, query string
		header      http.Header
		body        []byte
		want        int
	}
	calls := []call{
		{path: "/basic", header: http.Header{"Authorization": {basic("hook", secBasicPass)}}, body: good, want: 200},
		{path: "/basic", header: http.Header{"Authorization": {basic("hook", secWrongPass)}}, body: good, want: 401},
		{path: "/basic", header: http.Header{"Authorization": {basic(secWrongKey, secBasicPass)}}, body: good, want: 401},
		{path: "/basic", body: good, want: 401},
		{path: "/basic", header: http.Header{"Authorization": {basic("hook", secBasicPass)}}, body: badJSON, want: 400},
		{path: "/key", header: http.Header{"X-Api-Key": {secAPIKey}}, body: good, want: 200},
		{path: "/key", header: http.Header{"X-Api-Key": {secWrongKey}}, body: good, want: 401},
		{path: "/key", header: http.Header{"X-Api-Key": {secAPIKey}}, body: badJSON, want: 400},
		{path: "/keyq", query: "token=" + secQueryKey, body: good, want: 200},
		{path: "/keyq", query: "token=" + secWrongKey, body: good, want: 401},
		{path: "/keyq", header: http.Header{"X-Api-Key": {secQueryKey}}, body: good, want: 401},
		{path: "/hmac", header: http.Header{"X-Signature": {hmacGood}, "X-Timestamp": {now}}, body: good, want: 200},
		{path: "/hmac", header: http.Header{"X-Signature": {hmacGood}, "X-Timestamp": {"1"}}, body: good, want: 401},
		{path: "/hmac", header: http.Header{"X-Signature": {hmacSHA512Base64(secWrongKey, now+"."+string(good))}, "X-Timestamp": {now}}, body: good, want: 401},
		{path: "/github", header: http.Header{"X-Hub-Signature-256": {ghGood}}, body: good, want: 502},
		{path: "/github", header: http.Header{"X-Hub-Signature-256": {githubSignature(secWrongKey, good)}}, body: good, want: 401},
		{path: "/github", header: http.Header{"X-Hub-Signature-256": {ghBadJSON}}, body: badJSON, want: 400},
		{path: "/github", body: badJSON, want: 401},
		{path: "/stripe", header: http.Header{"Stripe-Signature": {stripeGood}}, body: good, want: 200},
		{path: "/stripe", header: http.Header{"Stripe-Signature": {"t=1,v1=" + hex256(secStripe, "1."+string(good))}}, body: good, want: 401},
		{path: "/stripe", header: http.Header{"Stripe-Signature": {"t=" + now + ",v1=" + hex256(secWrongKey, now+"."+string(good))}}, body: good, want: 401},
		{path: "/slow", header: http.Header{"X-Api-Key": {secAPIKey}}, body: good, want: 504},
		{path: "/gate", header: http.Header{"X-Api-Key": {secGateKey}}, body: good, want: 200},
		{path: "/gate", header: http.Header{"X-Api-Key": {secWrongKey}}, body: badJSON, want: 401},
	}
	var bodies [][]byte
	for _, c := range calls {
		url := gatewayURL() + c.path
		if c.query != "" {
			url += "?" + c.query
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range c.header {
			req.Header[k] = v
		}
		status, _, b := do(t, tester, req)
		if status != c.want {
			t.Errorf("%s: status %d (%s), want %d", c.path, status, b, c.want)
		}
		bodies = append(bodies, b)
	}

	// The outbound credentials were really used: the assertions below are
	// about secrets that were in play.
	got := map[string]recorded{}
	for _, r := range up.requests() {
		got[r.path] = r
	}
	checks := map[string][2]string{
		"/basic":  {"Authorization", "Bearer " + secOutBearer},
		"/key":    {"X-Store-Key", secEnvHeader},
		"/stripe": {"X-Api-Key", secOutHeader},
	}
	for path, hv := range checks {
		if r, ok := got[path]; !ok || r.header.Get(hv[0]) != hv[1] {
			t.Errorf("%s: upstream did not get %s from the config (got %v)", path, hv[0], r.header)
		}
	}
	if r := got["/keyq"]; !strings.Contains(r.rawURI, secURLToken) {
		t.Errorf("/keyq: upstream URI %q lacks the configured token", r.rawURI)
	}
	// outbound signatures are secrets derived values too
	var outSigs []string
	for _, r := range up.requests() {
		for _, h := range []string{"X-Hub-Signature-256", "Webhook-Signature", "X-Out-Sig"} {
			if v := r.header.Get(h); v != "" {
				outSigs = append(outSigs, v)
			}
		}
	}
	if len(outSigs) != 3 {
		t.Errorf("found %d outbound signatures, want 3 (github, standard, hmac)", len(outSigs))
	}

	forbidden := []string{
		secBasicPass, secAPIKey, secQueryKey, secGateKey, secHMAC, secGitHub, secStripe, secOutBearer,
		secOutHeader, secEnvHeader, secOutGitHub, secOutHMAC, secURLToken, secURLPassword, secWrongKey,
		secWrongPass, secBodyMarker, secOutStandard, strings.TrimPrefix(secOutStandard, "whsec_"),
	}
	forbidden = append(forbidden, sentSecrets...)
	forbidden = append(forbidden, outSigs...)

	for i, b := range bodies {
		for _, s := range forbidden {
			if strings.Contains(string(b), s) {
				t.Errorf("response %d (%s) contains %q: %s", i, calls[i].path, s, b)
			}
		}
	}

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	var ours, rejected, attempts, gaveUp int
	for _, line := range lines {
		var entry struct {
			Level  string `json:"level"`
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
		}
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			continue
		}
		if strings.HasPrefix(entry.Logger, "http.handlers.webhook_gateway") {
			ours++
			switch entry.Msg {
			case "webhook rejected":
				rejected++
			case "forward attempt":
				attempts++
			case "forward gave up":
				gaveUp++
			}
		}
		for _, s := range forbidden {
			if bytes.Contains(line, []byte(s)) {
				t.Errorf("log line (logger %q) contains %q: %s", entry.Logger, s, line)
			}
		}
	}
	// The capture worked: the gateway's debug lines are there.
	if rejected < 10 || attempts < 5 || gaveUp < 2 {
		t.Errorf("captured %d gateway lines (%d rejected, %d attempts, %d gave up) out of %d: DEBUG logging not captured",
			ours, rejected, attempts, gaveUp, len(lines))
	}
	t.Logf("%d log lines checked, %d from the gateway; %d responses checked", len(lines), ours, len(bodies))
}

// TestNoSecretInLogsBehindProxyAndErrorRoutes is the gate in front of
// reverse_proxy, with handle_errors: the rejections go through Caddy's
// error routes. The gateway's own lines and every response stay clean.
// Caddy's own debug lines (reverse_proxy "upstream roundtrip" and
// http.log.error) log the request headers they saw, credential headers
// other than Authorization included; the body and every configured secret
// not sent by the request stay out of them too.
func TestNoSecretInLogsBehindProxyAndErrorRoutes(t *testing.T) {
	app := newUpstream(t, nil)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := startCaddyLogging(t, logFile, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /key {
		auth api_key %q
	}
	webhook_gateway /basic {
		auth basic hook %q
	}
	webhook_gateway /github {
		auth github %q
	}
	reverse_proxy %s
	handle_errors {
		respond "refused {err.status_code}: {err.message}" {err.status_code}
	}
}
`, secGateKey, secBasicPass, secGitHub, app.addr()))

	good := []byte(`{"marker":"` + secBodyMarker + `"}`)
	badJSON := []byte(`{"marker":"` + secBodyMarker + `",}`)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("hook:"+secBasicPass))
	wrongBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("hook:"+secWrongPass))
	ghGood := githubSignature(secGitHub, good)
	type call struct {
		path   string
		header http.Header
		body   []byte
		want   int
	}
	calls := []call{
		{"/key", http.Header{"X-Api-Key": {secGateKey}}, good, 200},
		{"/key", http.Header{"X-Api-Key": {secWrongKey}}, good, 401},
		{"/key", http.Header{"X-Api-Key": {secGateKey}}, badJSON, 400},
		{"/basic", http.Header{"Authorization": {basic}}, good, 200},
		{"/basic", http.Header{"Authorization": {wrongBasic}}, good, 401},
		{"/github", http.Header{"X-Hub-Signature-256": {ghGood}}, good, 200},
		{"/github", http.Header{"X-Hub-Signature-256": {githubSignature(secWrongKey, good)}}, good, 401},
		{"/github", nil, badJSON, 401},
	}
	// never sent by any request: may appear nowhere
	neverSent := []string{secGitHub, secBasicPass, secWrongPass, secBodyMarker}
	// sent in a request header: may appear only in Caddy's own request logs
	sent := []string{secGateKey, secWrongKey, ghGood, strings.TrimPrefix(ghGood, "sha256=")}
	for _, c := range calls {
		status, _, b := post(t, tester, c.path, "application/json", c.header, c.body)
		if status != c.want {
			t.Errorf("%s: status %d (%s), want %d", c.path, status, b, c.want)
		}
		for _, s := range append(append([]string{}, neverSent...), sent...) {
			if strings.Contains(string(b), s) {
				t.Errorf("%s: response contains %q: %s", c.path, s, b)
			}
		}
	}
	if n := len(app.requests()); n != 3 {
		t.Errorf("app saw %d requests, want the 3 accepted", n)
	}

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var ours, core int
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var entry struct {
			Logger string `json:"logger"`
		}
		_ = json.Unmarshal(line, &entry)
		for _, s := range neverSent {
			if bytes.Contains(line, []byte(s)) {
				t.Errorf("log line (logger %q) contains %q: %s", entry.Logger, s, line)
			}
		}
		headerLogger := entry.Logger == "http.log.error" || entry.Logger == "http.handlers.reverse_proxy"
		for _, s := range sent {
			if bytes.Contains(line, []byte(s)) {
				if headerLogger {
					core++
					continue
				}
				t.Errorf("log line (logger %q) contains %q: %s", entry.Logger, s, line)
			}
		}
		if strings.HasPrefix(entry.Logger, "http.handlers.webhook_gateway") {
			ours++
		}
	}
	if ours < 4 {
		t.Errorf("captured %d gateway lines, want the rejections logged at DEBUG", ours)
	}
	t.Logf("gateway lines: %d; Caddy request-log lines carrying a sent credential header: %d", ours, core)
}

func hex256(key, msg string) string {
	return fmt.Sprintf("%x", hmacSHA256([]byte(key), []byte(msg)))
}
