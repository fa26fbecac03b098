package queue

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Result is the final answer of a request-reply hook's upstream, kept for
// the caller to fetch with its secret id.
type Result struct {
	Hook        string    `json:"hook"`
	EventID     string    `json:"event_id"`
	Status      int       `json:"status"` // the upstream's final status; 502 (504 on timeout) when none
	ContentType string    `json:"content_type,omitempty"`
	Body        []byte    `json:"body,omitempty"`
	Error       string    `json:"error,omitempty"` // why there was no answer; "" when the upstream answered
	StoredAt    time.Time `json:"stored_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Results stores fetchable results. Both the Pebble and the NATS store
// implement it (a type assertion on Store, as for HookTokens). The secret
// is never stored: records are keyed by SHA-256(secret).
type Results interface {
	// PutResult stores r under secret, durably (synced) before it returns;
	// the same secret again replaces it.
	PutResult(ctx context.Context, secret string, r Result) error
	// GetResult: ErrNotFound when unknown or expired (ExpiresAt not after
	// now).
	GetResult(ctx context.Context, secret string) (Result, error)
	// PurgeResults removes results expired at now and reports how many.
	PurgeResults(ctx context.Context, now time.Time) (int, error)
}

// Bounds of a stored result.
const (
	// MaxResultBody bounds Result.Body; a longer one is refused.
	MaxResultBody = 16 << 20
	// MaxResultField bounds each of Hook, EventID, ContentType and Error.
	MaxResultField = 4096
	// MaxResultSecret bounds the secret a result is stored under.
	MaxResultSecret = 128
)

// ErrResultSecret: the secret is empty or longer than MaxResultSecret. On
// GetResult it comes with ErrNotFound (no such id can be stored).
var ErrResultSecret = fmt.Errorf("result id must be 1 to %d bytes", MaxResultSecret)

// errNoResult is what GetResult returns for an unknown or expired id.
var errNoResult = fmt.Errorf("no such result (unknown or expired): %w", ErrNotFound)

// resultKey is the hex SHA-256 of a checked secret: the only form of it
// that is stored.
func resultKey(secret string) (string, error) {
	if secret == "" || len(secret) > MaxResultSecret {
		return "", ErrResultSecret
	}
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:]), nil
}

// lookupKey is resultKey for a read: a secret that cannot be stored is not
// found.
func lookupKey(secret string) (string, error) {
	k, err := resultKey(secret)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return k, nil
}

// checkResult checks a result to store and returns it as stored: times in
// UTC, StoredAt the store's now when zero.
func checkResult(r Result, now time.Time) (Result, error) {
	if len(r.Body) > MaxResultBody {
		return r, fmt.Errorf("result body of %d bytes is over the limit of %d", len(r.Body), MaxResultBody)
	}
	for _, f := range []struct{ name, v string }{
		{"hook", r.Hook}, {"event id", r.EventID}, {"content type", r.ContentType}, {"error", r.Error},
	} {
		if len(f.v) > MaxResultField {
			return r, fmt.Errorf("result %s is longer than %d bytes", f.name, MaxResultField)
		}
	}
	if r.Status < 100 || r.Status > 599 {
		return r, fmt.Errorf("result status %d is not an HTTP status", r.Status)
	}
	if r.ExpiresAt.IsZero() {
		return r, errors.New("result has no expiry time")
	}
	if r.StoredAt.IsZero() {
		r.StoredAt = now
	}
	r.StoredAt, r.ExpiresAt = r.StoredAt.UTC(), r.ExpiresAt.UTC()
	return r, nil
}

// expired reports whether r can no longer be fetched at now.
func (r *Result) expired(now time.Time) bool { return !r.ExpiresAt.After(now) }

// encodeResult is the stored form of r in Pebble: the length of the JSON
// of r without its body, that JSON, then the body as is (no base64).
func encodeResult(r Result) ([]byte, error) {
	body := r.Body
	r.Body = nil
	meta, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(meta)+len(body))
	out = binary.AppendUvarint(out, uint64(len(meta)))
	out = append(out, meta...)
	return append(out, body...), nil
}

func decodeResult(v []byte) (Result, error) {
	n, w := binary.Uvarint(v)
	// the JSON of a checked result is far below 1 MiB
	if w <= 0 || n > 1<<20 {
		return Result{}, errors.New("stored result: bad length")
	}
	end := w + int(n) //nolint:gosec // n is at most 1 MiB, checked above
	if end > len(v) {
		return Result{}, errors.New("stored result: bad length")
	}
	var r Result
	if err := json.Unmarshal(v[w:end], &r); err != nil {
		return Result{}, fmt.Errorf("stored result: %w", err)
	}
	if body := v[end:]; len(body) > 0 {
		r.Body = body
	}
	return r, nil
}
