package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/reshape"
	"github.com/caddy-webhooks/gateway/verify"
)

// AuthConfig is one way to authenticate the sender. Secrets, usernames
// and passwords may be {env.*} placeholders, resolved at provisioning.
type AuthConfig struct {
	// Method is "basic", "api_key", "hmac", "issued", or a provider
	// preset such as "github", "stripe", "slack", "standard" (see the
	// verify package).
	Method string `json:"method"`

	// Issuer of "issued": the issuer of a webhook_gateway_tokens handler,
	// whose hooks are accepted.
	Issuer string `json:"issuer,omitempty"`

	// APIToken and Token of "issued": placeholder templates resolved per
	// request that yield the two tokens of a hook URL, e.g.
	// {http.request.uri.path.1} and {http.request.uri.path.2}.
	APIToken string `json:"api_token,omitempty"`
	Token    string `json:"token,omitempty"`

	// Secrets are the HMAC secrets of "hmac" and presets, or the accepted
	// keys of "api_key". Any one matching passes (rotation).
	Secrets []string `json:"secrets,omitempty"`

	// Username for "basic".
	Username string `json:"username,omitempty"`

	// Password for "basic": plaintext (use {env.X}) or a hash made by
	// `caddy hash-password` (bcrypt or argon2id).
	Password string `json:"password,omitempty"`

	// Header is, for "api_key", the header carrying the key (default
	// X-API-Key); for "hmac", the header carrying the signature (required).
	Header string `json:"header,omitempty"`

	// Query is, for "api_key", a query parameter carrying the key.
	Query string `json:"query,omitempty"`

	// Bearer makes "api_key" read "Authorization: Bearer <key>".
	Bearer bool `json:"bearer,omitempty"`

	// Algorithm of "hmac": sha1, sha256 (default) or sha512.
	Algorithm string `json:"algorithm,omitempty"`

	// Encoding of the "hmac" signature: hex (default), base64 or base64url.
	Encoding string `json:"encoding,omitempty"`

	// Prefix before the encoded "hmac" signature, e.g. "sha256=".
	Prefix string `json:"prefix,omitempty"`

	// TimestampHeader of "hmac": a header with the unix time of signing.
	TimestampHeader string `json:"timestamp_header,omitempty"`

	// Signed is the "hmac" signed-content template, e.g.
	// "{timestamp}.{body}". Default: "{body}".
	Signed string `json:"signed,omitempty"`

	// Tolerance is the largest clock skew accepted, in either direction,
	// for schemes that sign a timestamp. Default: 5m.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	// RejectDuplicateKeys refuses (401) an authentic JSON body in which an
	// object holds a key twice, since parsers disagree on which one counts.
	// Presets that sign fields rather than the raw body (adyen) always do.
	RejectDuplicateKeys bool `json:"reject_duplicate_keys,omitempty"`
}

// spec turns the config into a verify.Spec with {env.*} resolved.
func (a AuthConfig) spec(repl *caddy.Replacer) verify.Spec {
	secrets := make([]string, len(a.Secrets))
	for i, s := range a.Secrets {
		secrets[i] = repl.ReplaceKnown(s, "")
	}
	return verify.Spec{
		Method:          a.Method,
		Secrets:         secrets,
		Username:        repl.ReplaceKnown(a.Username, ""),
		Password:        repl.ReplaceKnown(a.Password, ""),
		Header:          a.Header,
		Query:           a.Query,
		Bearer:          a.Bearer,
		Algorithm:       a.Algorithm,
		Encoding:        a.Encoding,
		Prefix:          a.Prefix,
		TimestampHeader: a.TimestampHeader,
		Signed:          a.Signed,
		Tolerance:       time.Duration(a.Tolerance),

		RejectDuplicateKeys: a.RejectDuplicateKeys,
	}
}

// ReshapeConfig maps fields of the received JSON into a new document.
type ReshapeConfig struct {
	// Keep starts from the received document instead of an empty object.
	Keep bool `json:"keep,omitempty"`

	// Mappings are applied in order.
	Mappings []Mapping `json:"mappings,omitempty"`
}

// Mapping is one `set` or `delete` line of a reshape block.
type Mapping struct {
	// Set is the destination path (gjson/sjson syntax: "a.b", "items.0",
	// "a\.b" for a key with a dot).
	Set string `json:"set,omitempty"`

	// Value of a set: "{json.<path>}" copies a value of the received JSON
	// with its type; any other placeholder or literal text is allowed.
	Value string `json:"value,omitempty"`

	// Required makes a missing {json.*} source answer 422 instead of
	// omitting the field.
	Required bool `json:"required,omitempty"`

	// Delete is a path to remove.
	Delete string `json:"delete,omitempty"`
}

func (c *ReshapeConfig) compile() (*reshape.Program, error) {
	ops := make([]reshape.Op, 0, len(c.Mappings))
	for i, m := range c.Mappings {
		switch {
		case m.Set != "" && m.Delete != "":
			return nil, fmt.Errorf("mapping #%d: set and delete are exclusive", i+1)
		case m.Delete != "":
			ops = append(ops, reshape.Op{Delete: true, Path: m.Delete})
		case m.Set != "":
			ops = append(ops, reshape.Op{Path: m.Set, Value: m.Value, Required: m.Required})
		default:
			return nil, fmt.Errorf("mapping #%d: needs set or delete", i+1)
		}
	}
	return reshape.Compile(c.Keep, ops)
}

// ForwardConfig is one upstream action.
type ForwardConfig struct {
	// Name labels the action in metrics, logs, fan-out answers and the
	// admin API. The URL is never shown there, since incoming-webhook URLs
	// (Slack, Discord) carry their token in the path. Default: the
	// action's position, "0", "1", ...
	Name string `json:"name,omitempty"`

	// URL of the action. Scheme and host are fixed ({env.*} allowed);
	// placeholders in the path and query are resolved per request and
	// escaped, so a payload value cannot change where the request goes. A
	// path value must be one plain segment (not empty, no dot segment, no
	// "/", "\\", "%" or control character), else the request gets 422.
	// {json.<path>} is short for {http.webhook_gateway.json.<path>}, here
	// and in header values, as in reshape.
	URL string `json:"url"`

	// Method of the outbound request. Default: POST.
	Method string `json:"method,omitempty"`

	// Headers added to the outbound request; values may hold placeholders.
	Headers http.Header `json:"headers,omitempty"`

	// Timeout of one attempt: dial, TLS, headers and body. Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Retries after the first attempt. Default: 3.
	Retries *int `json:"retries,omitempty"`

	// BackoffBase is the first retry's backoff ceiling; it doubles per
	// retry with full jitter. Default: 500ms.
	BackoffBase caddy.Duration `json:"backoff_base,omitempty"`

	// BackoffMax caps the backoff and any Retry-After. Default: 30s.
	BackoffMax caddy.Duration `json:"backoff_max,omitempty"`

	// RetryOn lists the statuses retried, as "429" or classes as "5xx".
	// Network errors are always retried. Default: 408 425 429 5xx.
	RetryOn []string `json:"retry_on,omitempty"`

	// Sign signs every outbound attempt.
	Sign *SignConfig `json:"sign,omitempty"`

	// TLSInsecureSkipVerify disables verification of the upstream's TLS
	// certificate. Only for testing.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`

	// Body is "reshaped" (default when reshape is configured) or
	// "original" (the received JSON document).
	Body string `json:"body,omitempty"`
}

// SignConfig signs outbound requests.
type SignConfig struct {
	// Kind is "standard" (Standard Webhooks headers; secret whsec_...),
	// "github" (X-Hub-Signature-256) or "hmac".
	Kind string `json:"kind"`

	// Secret may be an {env.*} placeholder.
	Secret string `json:"secret"`

	// Header of "hmac" (required for it).
	Header string `json:"header,omitempty"`

	// Algorithm of "hmac": sha1, sha256 (default), sha512.
	Algorithm string `json:"algorithm,omitempty"`

	// Encoding of "hmac": hex (default), base64, base64url.
	Encoding string `json:"encoding,omitempty"`

	// Prefix of "hmac", e.g. "sha256=".
	Prefix string `json:"prefix,omitempty"`
}

// action is a provisioned ForwardConfig or PublishConfig, or the callback
// of a request-reply hook: what every kind has, and its sender.
type action struct {
	name    string // for metrics, logs, summaries; never the URL
	sender  sender
	keys    []string // per-request placeholders of the target and headers
	timeout time.Duration
	policy  forward.Policy
	// original: the action sends the received document, not the reshaped one.
	original bool
	// customRetry: retries or backoff were configured, so async mode uses
	// them instead of the long default schedule.
	customRetry bool
}

const (
	defaultRetries = 3
	defaultTimeout = 30 * time.Second
)

func (f *ForwardConfig) provision(repl *caddy.Replacer, reshaped bool, index int) (*action, error) {
	t, err := f.target(repl)
	if err != nil {
		return nil, err
	}
	a := &action{name: f.Name, sender: t, timeout: time.Duration(f.Timeout)}
	if a.name == "" {
		a.name = strconv.Itoa(index)
	}
	if a.timeout <= 0 {
		a.timeout = defaultTimeout
	}
	a.keys = t.url.Keys()
	for _, vals := range t.headers {
		for _, v := range vals {
			a.keys = placeholderKeys(v, a.keys)
		}
	}
	if err := a.delivery(f.Body, reshaped, f.Retries, f.BackoffBase, f.BackoffMax); err != nil {
		return nil, err
	}
	if len(f.RetryOn) > 0 {
		a.policy.RetryOn, err = forward.ParseStatusSet(f.RetryOn)
		if err != nil {
			return nil, fmt.Errorf("retry_on: %w", err)
		}
	} else {
		a.policy.RetryOn = forward.DefaultRetryOn()
	}
	if t.signer, err = f.Sign.signer(repl); err != nil {
		return nil, err
	}
	return a, nil
}

// target builds the HTTP side of the forward, but for its signer: URL,
// method and headers, {env.*} resolved.
func (f *ForwardConfig) target(repl *caddy.Replacer) (*httpTarget, error) {
	if f.URL == "" {
		return nil, errors.New("url is required")
	}
	u, err := forward.ParseURL(repl.ReplaceKnown(expandJSONShorthand(f.URL), ""))
	if err != nil {
		return nil, err
	}
	t := &httpTarget{
		url:      u,
		method:   strings.ToUpper(f.Method),
		headers:  f.Headers.Clone(),
		insecure: f.TLSInsecureSkipVerify,
	}
	if t.method == "" {
		t.method = http.MethodPost
	}
	if err := forward.CheckMethod(t.method); err != nil {
		return nil, err
	}
	if t.headers == nil {
		t.headers = http.Header{}
	}
	for name, vals := range t.headers {
		if err := forward.CheckHeaderName(name); err != nil {
			return nil, err // else every attempt fails once the request is built
		}
		for i, v := range vals {
			// env placeholders now; the rest per request
			vals[i] = repl.ReplaceKnown(expandJSONShorthand(v), "")
		}
		t.headers[name] = vals
	}
	if t.headers.Get("Content-Type") == "" {
		t.headers.Set("Content-Type", "application/json")
	}
	return t, nil
}

// signer is the signer of outbound requests, nil when s is.
func (s *SignConfig) signer(repl *caddy.Replacer) (forward.Signer, error) {
	if s == nil {
		return nil, nil
	}
	if err := emptyEnv("sign: secret", s.Secret, repl); err != nil {
		return nil, err
	}
	signer, err := forward.NewSigner(s.Kind, repl.ReplaceKnown(s.Secret, ""), forward.HMACOptions{
		Header:    s.Header,
		Algorithm: s.Algorithm,
		Encoding:  s.Encoding,
		Prefix:    s.Prefix,
	})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return signer, nil
}

// delivery sets what forward and publish actions share: which body they
// send, and their retry policy (retries after the first attempt, backoff;
// async mode uses the long default schedule unless either is set).
func (a *action) delivery(body string, reshaped bool, retries *int, base, maxBackoff caddy.Duration) error {
	switch body {
	case "", "reshaped":
		a.original = !reshaped
	case "original":
		a.original = true
	default:
		return fmt.Errorf("body must be reshaped or original, not %q", body)
	}
	a.customRetry = retries != nil || base != 0 || maxBackoff != 0
	n := defaultRetries
	if retries != nil {
		n = *retries
	}
	if n < 0 {
		return errors.New("retries must not be negative")
	}
	a.policy = forward.Policy{Retries: n, Base: time.Duration(base), Max: time.Duration(maxBackoff)}
	return nil
}
