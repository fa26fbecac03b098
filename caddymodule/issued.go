package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/caddy-webhooks/gateway/queue"
	"github.com/caddy-webhooks/gateway/verify"
)

// Placeholders set by `auth issued` when it passes.
const (
	phIssued           = phPrefix + "issued."
	phIssuedTenant     = phIssued + "tenant"
	phIssuedDatasource = phIssued + "datasource"
	phIssuedEvent      = phIssued + "event"
	phIssuedTSField    = phIssued + "ts_field"
	phIssuedTS         = phIssued + "ts"
)

// maxPresentedToken bounds a token read from the request before it is
// looked up: issued tokens are a UUID and 40 hex digits.
const maxPresentedToken = 64

// issuedVerifier is `auth issued <issuer> <api token> <token>`: both
// templates are resolved per request (typically {path.1} {path.2}) and
// must name one hook issued by the webhook_gateway_tokens handler with
// the same issuer. Every request reads the store: a hook deleted through
// any instance stops working at once.
type issuedVerifier struct {
	issuer   string
	apiToken string // template
	token    string // template
	store    queue.HookTokens
}

// newIssuedVerifier builds the verifier of an `auth issued` line.
func newIssuedVerifier(ctx caddy.Context, a AuthConfig) (*issuedVerifier, error) {
	if a.Issuer == "" || a.APIToken == "" || a.Token == "" {
		return nil, errors.New("needs an issuer, an api token template and a token template, e.g. auth issued github-hooks {path.1} {path.2}")
	}
	store, err := hookStore(ctx)
	if err != nil {
		return nil, err
	}
	return &issuedVerifier{issuer: a.Issuer, apiToken: a.APIToken, token: a.Token, store: store}, nil
}

// Verify looks the presented tokens up and, when they name a hook, sets
// the issued.* placeholders. Its errors never hold the tokens.
func (v *issuedVerifier) Verify(r *http.Request, body []byte) error {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return fmt.Errorf("issued: no request placeholders: %w", verify.ErrMissing)
	}
	apiToken := repl.ReplaceAll(v.apiToken, "")
	token := repl.ReplaceAll(v.token, "")
	if apiToken == "" || token == "" {
		return fmt.Errorf("issued: %w", verify.ErrMissing)
	}
	if !tokenChars(apiToken) || !tokenChars(token) {
		return fmt.Errorf("issued: %w", verify.ErrMalformed)
	}
	h, err := v.store.HookByTokens(r.Context(), v.issuer, apiToken, token)
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("issued: no hook with these tokens: %w", verify.ErrMismatch)
	}
	if err != nil {
		return fmt.Errorf("issued: %w", err)
	}
	repl.Set(phIssuedTenant, h.Tenant)
	repl.Set(phIssuedDatasource, h.Datasource)
	repl.Set(phIssuedEvent, h.Event)
	repl.Set(phIssuedTSField, h.TSField)
	repl.Set(phIssuedTS, tsValue(body, h.TSField))
	return nil
}

// tokenChars reports whether s can be a token: at most 64 letters,
// digits and '-' (no path, no placeholder, no control character).
func tokenChars(s string) bool {
	if len(s) > maxPresentedToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '-' {
			return false
		}
	}
	return true
}

// indexForm matches the [N] of a tsField written as commits[0].timestamp.
var indexForm = regexp.MustCompile(`\[(\d+)\]`)

// tsPath turns a tsField into a gjson path: commits[0].timestamp and
// commits.0.timestamp are the same field.
func tsPath(field string) string {
	return strings.TrimPrefix(indexForm.ReplaceAllString(field, ".$1"), ".")
}

// tsValue is the value at tsField in the payload (JSON, or the JSON in
// the payload field of a form body): a string's text, any other value's
// raw JSON, "" when absent.
func tsValue(body []byte, field string) string {
	if field == "" {
		return ""
	}
	doc := body
	if !gjson.ValidBytes(doc) {
		p, err := formPayload(body)
		if err != nil || !gjson.ValidBytes(p) {
			return ""
		}
		doc = p
	}
	res := gjson.GetBytes(doc, tsPath(field))
	if res.Type == gjson.String {
		return res.Str
	}
	return res.Raw
}

var _ verify.Verifier = (*issuedVerifier)(nil)
