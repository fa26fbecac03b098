package queue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Issued hooks in the NATS store live in the KV bucket <prefix>_hooks,
// read through the stream leader like the events (no cache, no replica
// reads), so a hook created or deleted through one instance is seen at
// once by every other:
//
//	h.<issuer>.<tenant>.<datasource>.<event> -> JSON IssuedHook
//	k.<issuer>.<apiToken>                    -> the h key
//
// Each part is base64url without padding (so any bytes make a valid key
// and no part reaches into the next). Changes are compare-and-set on the
// key's revision; each write waits for JetStream's acknowledgement.

// maxHookWriteTries bounds the retries of an upsert racing with others.
const maxHookWriteTries = 16

func natsPart(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func natsHookKey(issuer, tenant, datasource, event string) string {
	return "h." + natsPart(issuer) + "." + natsPart(tenant) + "." + natsPart(datasource) + "." + natsPart(event)
}

func natsHookTokenKey(issuer, apiToken string) string {
	return "k." + natsPart(issuer) + "." + natsPart(apiToken)
}

func (n *NATS) readHook(ctx context.Context, key string) (IssuedHook, uint64, error) {
	e, err := n.hooks.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return IssuedHook{}, 0, ErrNotFound
	}
	if err != nil {
		return IssuedHook{}, 0, unavailable(err)
	}
	var h IssuedHook
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return IssuedHook{}, 0, fmt.Errorf("issued hook: %w", err)
	}
	return h, e.Revision(), nil
}

// PutHook creates or updates a hook; see HookTokens.
func (n *NATS) PutHook(ctx context.Context, h IssuedHook, keepTSField bool) (IssuedHook, error) {
	if err := checkHook(h); err != nil {
		return IssuedHook{}, err
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	key := natsHookKey(h.Issuer, h.Tenant, h.Datasource, h.Event)
	for try := range maxHookWriteTries {
		if try > 0 {
			// another writer won the last round: let it finish
			jitter := time.Duration(mathrand.Int64N(int64(5 * time.Millisecond))) //nolint:gosec // a retry jitter, not a secret
			if err := sleepCtx(ctx, time.Duration(try)*jitter); err != nil {
				return IssuedHook{}, err
			}
		}
		old, rev, err := n.readHook(ctx, key)
		switch {
		case err == nil:
			upd := updateHook(old, h, keepTSField)
			if upd == old {
				return old, nil
			}
			v, err := json.Marshal(upd) //nolint:gosec // the hook store keeps the tokens it checks
			if err != nil {
				return IssuedHook{}, err
			}
			if _, err := n.hooks.Update(ctx, key, v, rev); err != nil {
				if isConflict(err) {
					continue
				}
				return IssuedHook{}, unavailable(err)
			}
			return upd, nil
		case errors.Is(err, ErrNotFound):
			created, err := newHook(h, n.now())
			if err != nil {
				return IssuedHook{}, err
			}
			v, err := json.Marshal(created) //nolint:gosec // the hook store keeps the tokens it checks
			if err != nil {
				return IssuedHook{}, err
			}
			// the index first: a crash between the writes leaves an index
			// entry naming no hook, which finds nothing
			idx := natsHookTokenKey(created.Issuer, created.APIToken)
			if _, err := n.hooks.Create(ctx, idx, []byte(key)); err != nil {
				if isConflict(err) {
					return IssuedHook{}, errors.New("issued hook: the api token is taken")
				}
				return IssuedHook{}, unavailable(err)
			}
			if _, err := n.hooks.Create(ctx, key, v); err != nil {
				_ = n.hooks.Delete(ctx, idx)
				if isConflict(err) {
					continue // created meanwhile by another writer: update it
				}
				return IssuedHook{}, unavailable(err)
			}
			return created, nil
		default:
			return IssuedHook{}, err
		}
	}
	return IssuedHook{}, fmt.Errorf("%w: issued hook: too many concurrent changes", ErrUnavailable)
}

// HookByTokens finds a hook by the tokens of its URL; see HookTokens.
func (n *NATS) HookByTokens(ctx context.Context, issuer, apiToken, token string) (IssuedHook, error) {
	if !lookupOK(issuer, apiToken, token) {
		return IssuedHook{}, ErrNotFound
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	e, err := n.hooks.Get(ctx, natsHookTokenKey(issuer, apiToken))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return IssuedHook{}, ErrNotFound
	}
	if err != nil {
		return IssuedHook{}, unavailable(err)
	}
	h, _, err := n.readHook(ctx, string(e.Value()))
	if err != nil {
		return IssuedHook{}, err
	}
	// the index may outlive a hook deleted and created again: the record
	// decides
	if h.Issuer != issuer || h.APIToken != apiToken || !sameToken(h.Token, token) {
		return IssuedHook{}, ErrNotFound
	}
	return h, nil
}

// Hooks lists a tenant's hooks; see HookTokens.
func (n *NATS) Hooks(ctx context.Context, issuer, tenant string) ([]IssuedHook, error) {
	if !lookupOK(issuer, tenant) {
		return []IssuedHook{}, nil
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	hooks, err := n.scanHooks(ctx, "h."+natsPart(issuer)+"."+natsPart(tenant)+".>")
	if err != nil {
		return nil, unavailable(err)
	}
	sortHooks(hooks)
	return hooks, nil
}

// scanHooks reads the latest hook of every key matching filter (see
// scanKV).
func (n *NATS) scanHooks(ctx context.Context, filter string) ([]IssuedHook, error) {
	return scanKV[IssuedHook](ctx, n.hookStream, n.hooks, "$KV."+n.opts.Stream+"_hooks.", filter, "issued hook")
}

// HookByToken finds a tenant's hook by its token; see HookTokens.
func (n *NATS) HookByToken(ctx context.Context, issuer, tenant, token string) (IssuedHook, error) {
	if !lookupOK(issuer, tenant, token) {
		return IssuedHook{}, ErrNotFound
	}
	hooks, err := n.Hooks(ctx, issuer, tenant)
	if err != nil {
		return IssuedHook{}, err
	}
	return findToken(hooks, token)
}

// DeleteHook removes a tenant's hook by its token; see HookTokens.
func (n *NATS) DeleteHook(ctx context.Context, issuer, tenant, token string) error {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	h, err := n.HookByToken(ctx, issuer, tenant, token)
	if err != nil {
		return err
	}
	key := natsHookKey(h.Issuer, h.Tenant, h.Datasource, h.Event)
	if err := n.hooks.Delete(ctx, key); err != nil {
		return unavailable(err)
	}
	// the record is gone, so the URL no longer works; the index entry is
	// only tidied
	return unavailable(n.hooks.Delete(ctx, natsHookTokenKey(h.Issuer, h.APIToken)))
}

var _ HookTokens = (*NATS)(nil)

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
