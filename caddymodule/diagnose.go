package caddymodule

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Helpers that make configuration and rejection messages say what a user
// needs to fix it: which hook, which placeholder, what the sender did.

// hookError puts the hook's name in front of a provisioning or validation
// error, so a config with several hooks says which one is wrong.
func (h *Handler) hookError(err error) error {
	if err == nil {
		return nil
	}
	if h.Name == "" {
		// no name and no path matcher on the directive (e.g. inside a
		// handle block): say how to tell the hooks apart
		return fmt.Errorf("webhook_gateway hook \"default\" (unnamed: set its name option to see which hook this is): %w", err)
	}
	return fmt.Errorf("webhook_gateway hook %q: %w", h.Name, err)
}

var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// emptyEnv explains a credential that a {env.*} placeholder left empty:
// those are read from the environment of the Caddy process that runs the
// config (for `caddy reload`, the running server, not the shell that runs
// the command).
func emptyEnv(what, raw string, repl *caddy.Replacer) error {
	m := envPlaceholder.FindStringSubmatch(raw)
	if m == nil || repl.ReplaceKnown(raw, "") != "" {
		return nil
	}
	return fmt.Errorf("%s %s is empty: the environment variable %s is unset or empty in the environment of the Caddy process that runs this config "+
		"({env.*} is read by the running server; for `caddy reload`, set it where Caddy was started, not in the shell that runs reload)", what, m[0], m[1])
}

// authEnvError checks the {env.*} credentials of an auth line.
func authEnvError(a AuthConfig, repl *caddy.Replacer) error {
	for i, s := range a.Secrets {
		what := fmt.Sprintf("secret #%d", i+1)
		if a.Method == "api_key" {
			what = fmt.Sprintf("key #%d", i+1)
		}
		if err := emptyEnv(what, s, repl); err != nil {
			return err
		}
	}
	if err := emptyEnv("username", a.Username, repl); err != nil {
		return err
	}
	return emptyEnv("password", a.Password, repl)
}

// expandJSONShorthand turns the short {json.<path>} of reshape into the
// full {http.webhook_gateway.json.<path>}, so the same form works in every
// place the module resolves placeholders (forward URLs and headers,
// id_from).
func expandJSONShorthand(s string) string {
	if !strings.Contains(s, "{json.") {
		return s
	}
	return strings.ReplaceAll(s, "{json.", "{"+phJSON)
}

// bodyHint describes a body, for the log line of a refused signature: a
// body that gained a trailing newline on its way (`curl --data-binary
// @file` of a file saved by an editor) no longer matches the signature.
func bodyHint(body []byte) string {
	hint := fmt.Sprintf("%d bytes", len(body))
	if n := len(body); n > 0 && body[n-1] == '\n' {
		hint += ", ending in a newline (was one added after signing?)"
	}
	return hint
}

// senderAddr is the client address Caddy determined (trusted proxies
// applied), else the connection's remote address.
func senderAddr(r *http.Request) string {
	if ip, ok := clientIP(r); ok {
		return ip
	}
	return r.RemoteAddr
}

// clientIP is the client address Caddy determined, trusted proxies
// applied: an IP address without port. ok is false when it has none.
func clientIP(r *http.Request) (string, bool) {
	ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip, ok && ip != ""
}

// validWhsec reports whether s is a Standard Webhooks key: whsec_ and
// base64.
func validWhsec(s string) bool {
	encoded, ok := strings.CutPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(encoded)
	return ok && err == nil && len(key) > 0
}
