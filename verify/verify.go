// Package verify authenticates inbound webhooks: HTTP Basic, API keys, a
// generic HMAC recipe, and provider presets (GitHub, Stripe, Slack,
// Standard Webhooks and more), all over the exact raw bytes received.
//
// Every comparison is constant-time, every configured secret is tried (so
// timing does not tell which matched), a missing credential is a failure,
// and errors never carry a secret, a received credential or body bytes.
package verify

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"
)

// Verifier checks one inbound request; safe for concurrent use.
type Verifier interface {
	// Verify returns nil when the request is authentic. body is the exact
	// raw bytes received.
	Verify(r *http.Request, body []byte) error
}

// Sentinel errors, wrapped by the errors Verify returns.
var (
	ErrMissing   = errors.New("credential missing")
	ErrMalformed = errors.New("credential malformed")
	ErrMismatch  = errors.New("credential does not match")
	ErrTimestamp = errors.New("timestamp outside tolerance")
)

// DefaultTolerance is the clock skew accepted by timestamped schemes.
const DefaultTolerance = 5 * time.Minute

// Spec describes one `auth` line, placeholders already resolved.
type Spec struct {
	Method          string   // "basic", "api_key", "hmac", or a preset name
	Secrets         []string // hmac/preset secrets (any matches); api_key keys
	Username        string   // basic
	Password        string   // basic: plaintext, or a bcrypt/argon2id hash from `caddy hash-password`
	Header          string   // api_key: key header (default X-API-Key); hmac: signature header
	Query           string   // api_key: query parameter carrying the key
	Bearer          bool     // api_key: Authorization: Bearer <key>
	Algorithm       string   // hmac: sha1 | sha256 (default) | sha512
	Encoding        string   // hmac: hex (default) | base64 | base64url
	Prefix          string   // hmac: text before the encoded signature
	TimestampHeader string   // hmac: header with the unix time of signing
	Signed          string   // hmac: signed-content template, default "{body}"
	Tolerance       time.Duration
	// RejectDuplicateKeys refuses an authentic JSON body in which an
	// object holds a key twice (presets that sign fields rather than the
	// raw body, such as adyen, always do).
	RejectDuplicateKeys bool
	Now                 func() time.Time
}

// New builds the verifier of s. Errors name the problem, never a secret.
func New(s Spec) (Verifier, error) {
	v, err := build(s)
	if err != nil || !s.RejectDuplicateKeys {
		return v, err
	}
	return noDuplicateKeys{Verifier: v, method: s.Method}, nil
}

func build(s Spec) (Verifier, error) {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Tolerance < 0 {
		return nil, errors.New("tolerance must not be negative")
	}
	if s.Tolerance == 0 {
		s.Tolerance = DefaultTolerance
	}
	switch s.Method {
	case "basic":
		return newBasic(s.Username, s.Password)
	case "api_key":
		return newAPIKey(s)
	case "hmac":
		return newRecipe(s)
	}
	p, ok := presets[s.Method]
	if !ok {
		return nil, fmt.Errorf("unknown auth method %q", s.Method)
	}
	return p.build(s)
}

// Presets returns the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for name := range presets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the preset of a name.
func Lookup(name string) (Preset, bool) {
	p, ok := presets[name]
	return p, ok
}

// IDHeader returns the delivery-id header of a preset, "" if it has none.
func IDHeader(method string) string {
	return presets[method].IDHeader
}
