package queue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
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

// An upsert that loses a compare-and-set reads again and retries after a
// random pause of up to hookRetryBase<<try, at most hookRetryMax, for as
// long as its context allows. A count of tries is no bound: JetStream
// also refuses a compare-and-set while another write of the key is in
// flight ("wrong last sequence" without a number), a write that may yet
// fail, so a loss does not mean that another writer won.
const (
	hookRetryBase = 5 * time.Millisecond
	hookRetryMax  = 250 * time.Millisecond
)

func natsPart(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func natsHookKey(issuer, tenant, datasource, event string) string {
	return "h." + natsPart(issuer) + "." + natsPart(tenant) + "." + natsPart(datasource) + "." + natsPart(event)
}

func natsHookTokenKey(issuer, apiToken string) string {
	return "k." + natsPart(issuer) + "." + natsPart(apiToken)
}

// hookTry bounds the first try of a request to the hooks bucket; each
// further try gets twice as long, up to hookTryMax.
const (
	hookTry    = 250 * time.Millisecond
	hookTryMax = 8 * time.Second
)

// tries runs a request to the hooks bucket until it gets an answer, for
// as long as ctx allows: a try that gets none within its bound (a stream
// between leaders drops the requests sent to it, for about 200 ms on a
// quiet cluster), or is refused as leaderless, is sent again, with twice
// the bound. A write that got no answer may have been stored all the
// same: the caller makes its next try harmless.
func tries[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	for bound := hookTry; ; bound = min(2*bound, hookTryMax) {
		try, cancel := context.WithTimeout(ctx, bound)
		v, err := op(try)
		cancel()
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		switch {
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		case leaderless(err):
			if sleepCtx(ctx, retryPause) != nil {
				return v, err
			}
		default:
			return v, err
		}
	}
}

// readHook reads a hook and its revision.
func (n *NATS) readHook(ctx context.Context, key string) (IssuedHook, uint64, error) {
	e, err := tries(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return n.hooks.Get(ctx, key) })
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
//
// Each write is sent again when it gets no answer (see tries), so a write
// may meet its own first try: an update then conflicts and the next round
// reads its own value; an index entry found already naming this hook's
// key, and a hook found with this write's API token, are this write's
// (API tokens are new and random, or the caller's own).
func (n *NATS) PutHook(ctx context.Context, h IssuedHook, keepTSField bool) (IssuedHook, error) {
	if err := checkHook(h); err != nil {
		return IssuedHook{}, err
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	key := natsHookKey(h.Issuer, h.Tenant, h.Datasource, h.Event)
	for try := 0; ; try++ {
		if try > 0 {
			// another writer won the last round: let it finish
			limit := min(hookRetryBase<<min(try, 16), hookRetryMax)
			pause := time.Duration(mathrand.Int64N(int64(limit))) //nolint:gosec // a retry jitter, not a secret
			if err := sleepCtx(ctx, pause); err != nil {
				return IssuedHook{}, fmt.Errorf("%w: issued hook: no write won in time (%d tries): %w", ErrUnavailable, try, err)
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
			if _, err := tries(ctx, func(ctx context.Context) (uint64, error) { return n.hooks.Update(ctx, key, v, rev) }); err != nil {
				if isConflict(err) {
					continue
				}
				return IssuedHook{}, unavailable(err)
			}
			return upd, nil
		case errors.Is(err, ErrNotFound):
			created, err := n.createHook(ctx, key, h)
			if errors.Is(err, errHookRace) {
				continue // created meanwhile by another writer: update it
			}
			return created, err
		default:
			return IssuedHook{}, err
		}
	}
}

// errHookRace is createHook's answer when another writer created the hook
// first, or a write of its index entry was still in flight: the upsert
// reads again.
var errHookRace = errors.New("issued hook: created by another writer")

// createHook writes a new hook under key and its token index entry.
func (n *NATS) createHook(ctx context.Context, key string, h IssuedHook) (IssuedHook, error) {
	created, err := newHook(h, n.now())
	if err != nil {
		return IssuedHook{}, err
	}
	v, err := json.Marshal(created) //nolint:gosec // the hook store keeps the tokens it checks
	if err != nil {
		return IssuedHook{}, err
	}
	// the index first: a crash between the writes leaves an index entry
	// naming no hook, which finds nothing
	idx := natsHookTokenKey(created.Issuer, created.APIToken)
	if _, err := tries(ctx, func(ctx context.Context) (uint64, error) { return n.hooks.Create(ctx, idx, []byte(key)) }); err != nil {
		if !isConflict(err) {
			return IssuedHook{}, unavailable(err)
		}
		e, err := tries(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return n.hooks.Get(ctx, idx) })
		switch {
		case err == nil && string(e.Value()) == key:
			// this write's first try, or an entry left by a hook of this
			// key deleted before: it names the hook written next
		case errors.Is(err, jetstream.ErrKeyNotFound):
			// refused while a write of the key was in flight, that was
			// not stored in the end
			return IssuedHook{}, errHookRace
		case err != nil:
			return IssuedHook{}, unavailable(err)
		default:
			return IssuedHook{}, errors.New("issued hook: the api token is taken")
		}
	}
	_, err = tries(ctx, func(ctx context.Context) (uint64, error) { return n.hooks.Create(ctx, key, v) })
	if err == nil {
		return created, nil
	}
	if !isConflict(err) {
		// maybe stored after all: the index entry stays, and names
		// nothing if not
		return IssuedHook{}, unavailable(err)
	}
	if got, _, rerr := n.readHook(ctx, key); rerr == nil && got.APIToken == created.APIToken {
		return got, nil // this write's first try
	}
	_, _ = tries(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, n.hooks.Delete(ctx, idx) })
	return IssuedHook{}, errHookRace
}

// HookByTokens finds a hook by the tokens of its URL; see HookTokens.
func (n *NATS) HookByTokens(ctx context.Context, issuer, apiToken, token string) (IssuedHook, error) {
	if !lookupOK(issuer, apiToken, token) {
		return IssuedHook{}, ErrNotFound
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	idx := natsHookTokenKey(issuer, apiToken)
	e, err := tries(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return n.hooks.Get(ctx, idx) })
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
	del := func(key string) error {
		_, err := tries(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, n.hooks.Delete(ctx, key) })
		return unavailable(err)
	}
	if err := del(key); err != nil {
		return err
	}
	// the record is gone, so the URL no longer works; the index entry is
	// only tidied
	return del(natsHookTokenKey(h.Issuer, h.APIToken))
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
