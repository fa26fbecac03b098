package queue

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// IssuedHook is a hook URL issued at run time through the management API:
// the pair (APIToken, Token) in the URL identifies it, and it belongs to
// one tenant. Hooks are keyed by (Issuer, Tenant, Datasource, Event); the
// issuer names a token set, so two management handlers with different
// issuers never see each other's hooks.
type IssuedHook struct {
	Issuer     string `json:"issuer"`
	Tenant     string `json:"tenant"`
	Datasource string `json:"datasource"`
	Event      string `json:"event"`
	// APIToken is a UUID, the public half of the URL; it indexes the hook.
	APIToken string `json:"api_token"`
	// Token is 160 random bits in hex, the secret half; always compared in
	// constant time.
	Token string `json:"token"`
	// TSField is the path of the event time in the payloads, "" for none.
	TSField   string    `json:"ts_field,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// MaxHookField bounds each of issuer, tenant, datasource, event and
// tsField, since they become store keys and placeholder values.
const MaxHookField = 256

// HookTokens stores issued hooks. Every read goes to the store (no cache):
// a hook created or deleted through one instance is seen by every
// instance sharing the store at once.
type HookTokens interface {
	// PutHook creates the hook of (issuer, tenant, datasource, event), or
	// updates it: an existing hook keeps its tokens and CreatedAt, and its
	// TSField unless keepTSField is false. A new hook takes h's tokens
	// when given (else new ones, see NewHookTokens) and the store's time.
	// It returns the hook as stored, durably.
	PutHook(ctx context.Context, h IssuedHook, keepTSField bool) (IssuedHook, error)
	// HookByTokens finds the hook of a hook URL by a point read on
	// (issuer, apiToken); the token is compared in constant time.
	// ErrNotFound unless both match one hook.
	HookByTokens(ctx context.Context, issuer, apiToken, token string) (IssuedHook, error)
	// Hooks lists a tenant's hooks, ordered by datasource then event;
	// empty, not nil, when there is none.
	Hooks(ctx context.Context, issuer, tenant string) ([]IssuedHook, error)
	// HookByToken finds a tenant's hook by its token (constant-time
	// compares). ErrNotFound for another tenant's token.
	HookByToken(ctx context.Context, issuer, tenant, token string) (IssuedHook, error)
	// DeleteHook removes a tenant's hook by its token, durably; its URL
	// stops working at once. ErrNotFound for another tenant's token.
	DeleteHook(ctx context.Context, issuer, tenant, token string) error
}

// NewHookTokens returns a new API token (a random UUID) and token (160
// random bits in hex).
func NewHookTokens() (apiToken, token string, err error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return "", "", err
	}
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	return id.String(), hex.EncodeToString(b[:]), nil
}

// checkHook checks the fields of a hook to store.
func checkHook(h IssuedHook) error {
	for _, f := range []struct{ name, v string }{
		{"issuer", h.Issuer}, {"tenant", h.Tenant}, {"datasource", h.Datasource}, {"event", h.Event},
	} {
		if f.v == "" {
			return fmt.Errorf("issued hook: %s is empty", f.name)
		}
		if len(f.v) > MaxHookField {
			return fmt.Errorf("issued hook: %s is longer than %d bytes", f.name, MaxHookField)
		}
	}
	if len(h.TSField) > MaxHookField {
		return fmt.Errorf("issued hook: tsField is longer than %d bytes", MaxHookField)
	}
	if (h.APIToken == "") != (h.Token == "") || len(h.APIToken) > MaxHookField || len(h.Token) > MaxHookField {
		return errors.New("issued hook: give both tokens or neither")
	}
	return nil
}

// newHook completes a hook to create: tokens when not given, the time.
func newHook(h IssuedHook, now time.Time) (IssuedHook, error) {
	if h.APIToken == "" {
		var err error
		if h.APIToken, h.Token, err = NewHookTokens(); err != nil {
			return h, err
		}
	}
	h.CreatedAt = now.UTC().Truncate(time.Millisecond)
	return h, nil
}

// updateHook is old updated by h: tokens and CreatedAt kept.
func updateHook(old, h IssuedHook, keepTSField bool) IssuedHook {
	if !keepTSField {
		old.TSField = h.TSField
	}
	return old
}

// lookupOK reports whether a lookup's arguments can name a hook at all:
// empty or oversized values are not looked up.
func lookupOK(vals ...string) bool {
	for _, v := range vals {
		if v == "" || len(v) > MaxHookField {
			return false
		}
	}
	return true
}

// sameToken compares a stored token with a presented one in constant
// time (for tokens of equal length; a length differs for every stored
// token alike, so it tells nothing).
func sameToken(stored, presented string) bool {
	return subtle.ConstantTimeCompare([]byte(stored), []byte(presented)) == 1
}

// findToken picks the hook whose token is token, comparing with every one.
func findToken(hooks []IssuedHook, token string) (IssuedHook, error) {
	var found IssuedHook
	ok := false
	for _, h := range hooks {
		if sameToken(h.Token, token) {
			found, ok = h, true
		}
	}
	if !ok {
		return IssuedHook{}, ErrNotFound
	}
	return found, nil
}

// lengthPrefixed encodes parts unambiguously whatever bytes they hold.
func lengthPrefixed(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}
