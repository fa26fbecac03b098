package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Key layout of issued hooks in the Pebble store, beside the events'
// (see pebble.go):
//
//	h lp(issuer) lp(tenant) lp(datasource) lp(event) -> JSON IssuedHook
//	k lp(issuer) lp(apiToken)                         -> the h key
//
// lp is a length-prefixed string, so no value can reach into the next.
// Every change is one synced batch.
const (
	kindHook      = 'h'
	kindHookToken = 'k'
)

func hookKey(issuer, tenant, datasource, event string) []byte {
	return prefixed(kindHook, lengthPrefixed(issuer, tenant, datasource, event))
}

func hookTokenKey(issuer, apiToken string) []byte {
	return prefixed(kindHookToken, lengthPrefixed(issuer, apiToken))
}

func (p *Pebble) readHook(key []byte) (IssuedHook, error) {
	v, err := p.getValue(key)
	if err != nil {
		return IssuedHook{}, err
	}
	var h IssuedHook
	if err := json.Unmarshal(v, &h); err != nil {
		return IssuedHook{}, fmt.Errorf("issued hook: %w", err)
	}
	return h, nil
}

// PutHook creates or updates a hook; see HookTokens.
func (p *Pebble) PutHook(ctx context.Context, h IssuedHook, keepTSField bool) (IssuedHook, error) {
	if err := ctx.Err(); err != nil {
		return IssuedHook{}, err
	}
	if err := checkHook(h); err != nil {
		return IssuedHook{}, err
	}
	p.hooksMu.Lock()
	defer p.hooksMu.Unlock()
	key := hookKey(h.Issuer, h.Tenant, h.Datasource, h.Event)
	old, err := p.readHook(key)
	switch {
	case err == nil:
		if h = updateHook(old, h, keepTSField); h == old {
			return old, nil
		}
	case errors.Is(err, ErrNotFound):
		if h, err = newHook(h, p.now()); err != nil {
			return IssuedHook{}, err
		}
		if _, err := p.getValue(hookTokenKey(h.Issuer, h.APIToken)); !errors.Is(err, ErrNotFound) {
			if err == nil {
				err = errors.New("issued hook: the api token is taken")
			}
			return IssuedHook{}, unavailable(err)
		}
	default:
		return IssuedHook{}, unavailable(err)
	}
	v, err := json.Marshal(h) //nolint:gosec // the hook store keeps the tokens it checks
	if err != nil {
		return IssuedHook{}, err
	}
	b := p.db.NewBatch()
	defer func() { _ = b.Close() }()
	if err := b.Set(key, v, nil); err != nil {
		return IssuedHook{}, unavailable(err)
	}
	if err := b.Set(hookTokenKey(h.Issuer, h.APIToken), key, nil); err != nil {
		return IssuedHook{}, unavailable(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return IssuedHook{}, unavailable(err)
	}
	return h, nil
}

// HookByTokens finds a hook by the tokens of its URL; see HookTokens.
func (p *Pebble) HookByTokens(ctx context.Context, issuer, apiToken, token string) (IssuedHook, error) {
	if err := ctx.Err(); err != nil {
		return IssuedHook{}, err
	}
	if !lookupOK(issuer, apiToken, token) {
		return IssuedHook{}, ErrNotFound
	}
	key, err := p.getValue(hookTokenKey(issuer, apiToken))
	if err != nil {
		return IssuedHook{}, unavailable(err)
	}
	h, err := p.readHook(key)
	if err != nil {
		return IssuedHook{}, unavailable(err)
	}
	// the index may outlive a hook deleted and created again: the record
	// decides
	if h.Issuer != issuer || h.APIToken != apiToken || !sameToken(h.Token, token) {
		return IssuedHook{}, ErrNotFound
	}
	return h, nil
}

// Hooks lists a tenant's hooks; see HookTokens.
func (p *Pebble) Hooks(ctx context.Context, issuer, tenant string) ([]IssuedHook, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []IssuedHook{}
	if !lookupOK(issuer, tenant) {
		return out, nil
	}
	prefix := prefixed(kindHook, lengthPrefixed(issuer, tenant))
	it, err := p.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, unavailable(err)
	}
	for it.First(); it.Valid(); it.Next() {
		var h IssuedHook
		if err := json.Unmarshal(it.Value(), &h); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("issued hook: %w", err)
		}
		out = append(out, h)
	}
	if err := it.Close(); err != nil {
		return nil, unavailable(err)
	}
	sortHooks(out)
	return out, nil
}

// HookByToken finds a tenant's hook by its token; see HookTokens.
func (p *Pebble) HookByToken(ctx context.Context, issuer, tenant, token string) (IssuedHook, error) {
	if !lookupOK(issuer, tenant, token) {
		return IssuedHook{}, ErrNotFound
	}
	hooks, err := p.Hooks(ctx, issuer, tenant)
	if err != nil {
		return IssuedHook{}, err
	}
	return findToken(hooks, token)
}

// DeleteHook removes a tenant's hook by its token; see HookTokens.
func (p *Pebble) DeleteHook(ctx context.Context, issuer, tenant, token string) error {
	p.hooksMu.Lock()
	defer p.hooksMu.Unlock()
	h, err := p.HookByToken(ctx, issuer, tenant, token)
	if err != nil {
		return err
	}
	b := p.db.NewBatch()
	defer func() { _ = b.Close() }()
	if err := b.Delete(hookKey(h.Issuer, h.Tenant, h.Datasource, h.Event), nil); err != nil {
		return unavailable(err)
	}
	if err := b.Delete(hookTokenKey(h.Issuer, h.APIToken), nil); err != nil {
		return unavailable(err)
	}
	return unavailable(b.Commit(pebble.Sync))
}

// sortHooks orders hooks by datasource, then event.
func sortHooks(hooks []IssuedHook) {
	slices.SortFunc(hooks, func(a, b IssuedHook) int {
		if c := strings.Compare(a.Datasource, b.Datasource); c != 0 {
			return c
		}
		return strings.Compare(a.Event, b.Event)
	})
}

var _ HookTokens = (*Pebble)(nil)
