package caddymodule

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func provisionErr(t *testing.T, h *Handler) error {
	t.Helper()
	// a context with a config, as Caddy provisions handlers (they find the
	// webhook_gateway app through it)
	ctx, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Provision(ctx)
	if err == nil {
		err = h.Validate()
	}
	t.Cleanup(func() {
		_ = h.Cleanup()
		if h.app != nil {
			_ = h.app.Cleanup() // releases the event store a logging hook opened
		}
	})
	return err
}

func parseHandler(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	return h, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
}

// Every provisioning and validation error starts with the hook's name.
func TestErrorsNameTheHook(t *testing.T) {
	for _, tc := range []struct {
		h    *Handler
		want []string
	}{
		{&Handler{Name: "pets", Forward: []ForwardConfig{{URL: "http://127.0.0.1:1/x", RetryOn: []string{"abc"}}}}, []string{`webhook_gateway hook "pets": forward #1: retry_on`}},
		{&Handler{Name: "shop", Auth: []AuthConfig{{Method: "api_key"}, {Method: "hmac", Secrets: []string{"s"}}}}, []string{`webhook_gateway hook "shop": auth #`}},
		{&Handler{Name: "q", Mode: "async-ish"}, []string{`webhook_gateway hook "q": unknown mode`}},
		{&Handler{Forward: []ForwardConfig{{URL: ""}}}, []string{`webhook_gateway hook "default" (unnamed: set its name option`, "forward #1: url is required"}},
	} {
		err := provisionErr(t, tc.h)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want %q", err, want)
			}
		}
	}
}

// A {env.*} secret that is empty in the server's environment names the
// hook and the placeholder and says where it is read.
func TestEmptyEnvSecret(t *testing.T) {
	t.Setenv("WG_TEST_EMPTY_SECRET", "")
	err := provisionErr(t, &Handler{Name: "gh", Auth: []AuthConfig{{Method: "github", Secrets: []string{"{env.WG_TEST_EMPTY_SECRET}"}}}})
	for _, want := range []string{`hook "gh"`, "auth #1 (github)", "secret #1 {env.WG_TEST_EMPTY_SECRET} is empty", "WG_TEST_EMPTY_SECRET is unset or empty", "running server", "caddy reload"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	err = provisionErr(t, &Handler{Name: "b", Auth: []AuthConfig{{Method: "basic", Username: "u", Password: "{env.WG_TEST_EMPTY_SECRET}"}}})
	if err == nil || !strings.Contains(err.Error(), "password {env.WG_TEST_EMPTY_SECRET} is empty") {
		t.Errorf("basic: %v", err)
	}
	err = provisionErr(t, &Handler{Name: "out", Forward: []ForwardConfig{{URL: "http://127.0.0.1:1", Sign: &SignConfig{Kind: "github", Secret: "{env.WG_TEST_EMPTY_SECRET}"}}}})
	if err == nil || !strings.Contains(err.Error(), `hook "out": forward #1: sign: secret {env.WG_TEST_EMPTY_SECRET} is empty`) {
		t.Errorf("sign: %v", err)
	}
	t.Setenv("WG_TEST_EMPTY_SECRET", "set")
	if err := provisionErr(t, &Handler{Auth: []AuthConfig{{Method: "github", Secrets: []string{"{env.WG_TEST_EMPTY_SECRET}"}}}}); err != nil {
		t.Errorf("set: %v", err)
	}
}

// Preset names are matched case-insensitively, and a near miss gets a
// suggestion instead of the list of every preset.
func TestAuthMethodNames(t *testing.T) {
	_, err := parseHandler(t, "webhook_gateway {\n\tauth githb s\n}")
	if err == nil || !strings.Contains(err.Error(), `unknown method "githb"; did you mean github?`) || strings.Contains(err.Error(), "stripe") {
		t.Errorf("githb: %v", err)
	}
	_, err = parseHandler(t, "webhook_gateway {\n\tauth zzqx s\n}")
	if err == nil || !strings.Contains(err.Error(), "stripe") {
		t.Errorf("far off: %v", err)
	}
	h, err := parseHandler(t, "webhook_gateway {\n\tauth GitHub s\n}")
	if err != nil || h.Auth[0].Method != "github" {
		t.Fatalf("GitHub: %v %+v", err, h.Auth)
	}
	if err := provisionErr(t, &Handler{Auth: []AuthConfig{{Method: "Stripe", Secrets: []string{"whsec_x"}}}}); err != nil {
		t.Errorf("JSON method Stripe: %v", err)
	}
}

// sign standard refuses a key that is not whsec_ + base64, in the
// Caddyfile and at provisioning (where placeholders are resolved).
func TestSignStandardKey(t *testing.T) {
	_, err := parseHandler(t, "webhook_gateway {\n\tforward http://127.0.0.1:1 {\n\t\tsign standard notwhsec\n\t}\n}")
	if err == nil || !strings.Contains(err.Error(), "whsec_") {
		t.Errorf("Caddyfile: %v", err)
	}
	if _, err := parseHandler(t, "webhook_gateway {\n\tforward http://127.0.0.1:1 {\n\t\tsign standard {env.WG_TEST_KEY}\n\t}\n}"); err != nil {
		t.Errorf("placeholder: %v", err)
	}
	for key, ok := range map[string]bool{"notwhsec": false, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": false, "whsec_!!": false, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": true} {
		err := provisionErr(t, &Handler{Forward: []ForwardConfig{{URL: "http://127.0.0.1:1", Sign: &SignConfig{Kind: "standard", Secret: key}}}})
		if (err == nil) != ok {
			t.Errorf("%s: %v", key, err)
		}
	}
}

// {json.*} works in forward URLs, forward headers and id_from as in
// reshape.
func TestJSONShorthandOutsideReshape(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Clone(context.Background())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer upstream.Close()
	h, err := parseHandler(t, `webhook_gateway {
	id_from {json.event.id}
	forward `+upstream.URL+`/pets/{json.pet.id} {
		header X-Pet {json.petname}
		header X-Both "{json.petname} and {http.webhook_gateway.json.pet.id}"
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := provisionErr(t, h); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(`{"petname":"Gromit","pet":{"id":42},"event":{"id":"evt-7"}}`))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, &caddyhttp.Server{})
	if err := h.ServeHTTP(w, req, nil); err != nil || w.Code != http.StatusNoContent {
		t.Fatalf("%d %v %s", w.Code, err, w.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.URL.Path != "/pets/42" || got.Header.Get("X-Pet") != "Gromit" || got.Header.Get("X-Both") != "Gromit and 42" || got.Header.Get("Idempotency-Key") != "evt-7" {
		t.Errorf("upstream got %s %v", got.URL.Path, got.Header)
	}
}

// A refused request is logged at INFO with hook, reason and sender
// address; a body that gained a trailing newline after signing says so;
// the secret and the signature are not in the line.
func TestRejectionLoggedAtInfo(t *testing.T) {
	const secret = "log-test-secret"
	h := &Handler{Name: "gh", Auth: []AuthConfig{{Method: "github", Secrets: []string{secret}}}}
	if err := provisionErr(t, h); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	h.logger = zap.New(core)

	body := []byte(`{"a":1}`)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	sent := append(append([]byte(nil), body...), '\n') // as curl --data-binary @file sends a file ending in a newline
	req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(sent))
	req.RemoteAddr = "192.0.2.7:4711"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", sig)
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, &caddyhttp.Server{})
	if err := h.ServeHTTP(w, req, nil); err != nil || w.Code != http.StatusUnauthorized {
		t.Fatalf("%d %v", w.Code, err)
	}
	entries := logs.FilterMessage("webhook rejected").All()
	if len(entries) != 1 {
		t.Fatalf("%d rejection lines at INFO", len(entries))
	}
	e := entries[0]
	fields := e.ContextMap()
	if e.Level != zapcore.InfoLevel || fields["hook"] != "gh" || fields["reason"] != reasonAuth || fields["remote_ip"] != "192.0.2.7" {
		t.Errorf("log line %v %v", e.Level, fields)
	}
	cause, _ := fields["cause"].(string)
	if !strings.Contains(cause, "8 bytes, ending in a newline") || !strings.Contains(cause, "no secret matched") {
		t.Errorf("cause %q", cause)
	}
	var all bytes.Buffer
	for k, v := range fields {
		_, _ = io.WriteString(&all, k+"="+strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " "))+"\n")
	}
	if strings.Contains(all.String(), secret) || strings.Contains(all.String(), sig[7:]) || strings.Contains(all.String(), `{"a":1}`) {
		t.Errorf("secret, signature or body in the log: %s", all.String())
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// The run log options of the JSON config are checked when it loads.
func TestRunLogConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		h    *Handler
		want string
	}{
		{&Handler{Name: "l", Log: "verbose"}, `unknown log level "verbose" (want off, meta or full)`},
		{&Handler{Name: "l", LogBody: -1}, "log_body -1 out of range"},
		{&Handler{Name: "l", LogMax: -5}, "log_max must not be negative"},
		{&Handler{Name: "l", LogRedact: []string{"X Bad"}}, "log_redact:"},
	} {
		if err := provisionErr(t, tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.h, err, tc.want)
		}
	}
	h, err := parseHandler(t, "webhook_gateway {\n log meta\n log_body 1KB\n log_redact X-Session x-other\n log_max 10\n}")
	if err != nil {
		t.Fatal(err)
	}
	if h.Log != "meta" || h.LogBody != 1000 || len(h.LogRedact) != 2 || h.LogMax != 10 {
		t.Errorf("parsed %+v", h)
	}
	if err := provisionErr(t, h); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"X-Session", "X-Other", "Authorization", "Cookie"} {
		if !h.runLog.redacted(name) {
			t.Errorf("%s is not redacted: %v", name, h.runLog.redact)
		}
	}
}
