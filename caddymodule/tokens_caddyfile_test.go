package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestTokensCaddyfileErrors checks that malformed webhook_gateway_tokens
// blocks and auth issued lines are refused with an error that names them.
func TestTokensCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, input, wantErr string }{
		{"argument", "webhook_gateway_tokens extra", "wrong argument count"},
		{"unknown option", "webhook_gateway_tokens {\n issuer a\n colour red\n}", `unrecognized webhook_gateway_tokens option "colour"`},
		{"repeated", "webhook_gateway_tokens {\n issuer a\n issuer b\n}", "option issuer given twice"},
		{"issuer args", "webhook_gateway_tokens {\n issuer a b\n}", `issuer takes one argument, got extra "b"`},
		{"tenant none", "webhook_gateway_tokens {\n tenant\n}", "tenant needs one argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := new(TokensHandler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	for _, tc := range []struct{ name, input, wantErr string }{
		{"issued no args", "webhook_gateway {\n auth issued\n}", "auth issued needs an issuer, an api token template and a token template"},
		{"issued two args", "webhook_gateway {\n auth issued gh {path.1}\n}", "auth issued needs an issuer"},
		{"issued four args", "webhook_gateway {\n auth issued gh {path.1} {path.2} {path.3}\n}", "auth issued needs an issuer"},
		{"issued option", "webhook_gateway {\n auth issued gh {path.1} {path.2} {\n  header X\n }\n}", `auth issued: unrecognized option "header"`},
		{"issued duplicate keys", "webhook_gateway {\n auth issued gh {path.1} {path.2} {\n  reject_duplicate_keys\n }\n}", `auth issued: unrecognized option "reject_duplicate_keys"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestTokensValidate checks the provisioned config's required fields.
func TestTokensValidate(t *testing.T) {
	ok := TokensHandler{Issuer: "gh", Tenant: "{http.auth.user.id}", HookURL: "https://h/wh/{api_token}/{token}"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		change  func(*TokensHandler)
		wantErr string
	}{
		"no issuer":       {func(h *TokensHandler) { h.Issuer = "" }, "needs an issuer"},
		"long issuer":     {func(h *TokensHandler) { h.Issuer = strings.Repeat("i", 257) }, "issuer longer than"},
		"no tenant":       {func(h *TokensHandler) { h.Tenant = "" }, "needs a tenant placeholder"},
		"no hook_url":     {func(h *TokensHandler) { h.HookURL = "" }, "needs a hook_url template"},
		"hook_url tokens": {func(h *TokensHandler) { h.HookURL = "https://h/wh/{token}" }, "must hold {api_token} and {token}"},
		"relative prefix": {func(h *TokensHandler) { h.Prefix = "api" }, "must start with /"},
	} {
		h := ok
		c.change(&h)
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: %v, want %q", name, err, c.wantErr)
		}
	}
}

func TestTSPath(t *testing.T) {
	for in, want := range map[string]string{
		"commits[0].timestamp":  "commits.0.timestamp",
		"commits.0.timestamp":   "commits.0.timestamp",
		"a[1][2].b":             "a.1.2.b",
		"[0].ts":                "0.ts",
		"head_commit.timestamp": "head_commit.timestamp",
	} {
		if got := tsPath(in); got != want {
			t.Errorf("tsPath(%q) = %q, want %q", in, got, want)
		}
	}
	body := []byte(`{"commits":[{"timestamp":"t0"},{"timestamp":1700000000}],"n":{"a.b":"dotted"}}`)
	for field, want := range map[string]string{
		"commits[0].timestamp": "t0",
		"commits.1.timestamp":  "1700000000",
		"commits[5].timestamp": "",
		"":                     "",
	} {
		if got := tsValue(body, field); got != want {
			t.Errorf("tsValue(%q) = %q, want %q", field, got, want)
		}
	}
	form := []byte("payload=" + strings.ReplaceAll(`{"commits":[{"timestamp":"f0"}]}`, `"`, "%22"))
	if got := tsValue(form, "commits[0].timestamp"); got != "f0" {
		t.Errorf("form body: %q", got)
	}
}
