package queue

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Key layout of request-reply results in the Pebble store, beside the
// events' (see pebble.go):
//
//	R sha256hex(secret)           -> the encoded Result (see encodeResult)
//	X expiry sha256hex(secret)    -> nothing: results by expiry, for purges
//
// The secret itself is never written. A result replaced with another
// expiry leaves its old X entry, which the purge at that time drops
// without touching the newer result (the R value decides).
const (
	kindResult    = 'R'
	kindResultExp = 'X'
)

// purgeResultsBatch bounds the entries one purge batch handles.
const purgeResultsBatch = 1000

// pebbleResults is the Pebble store's state for results.
type pebbleResults struct {
	// mu: puts hold it shared (concurrent puts share an fsync), purges
	// exclusively, so a purge never removes a result replaced after it
	// read the old one.
	mu sync.RWMutex
	// floor: no X entry is below it, so a purge with nothing expired
	// seeks past the deletions of earlier purges at once.
	floor floor
}

func resultRecordKey(key string) []byte { return prefixed(kindResult, []byte(key)) }

func resultExpKey(key string, exp time.Time) []byte {
	return prefixed(kindResultExp, unixBytes(exp), []byte(key))
}

// PutResult stores r under secret in one synced batch; see Results.
func (p *Pebble) PutResult(ctx context.Context, secret string, r Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := resultKey(secret)
	if err != nil {
		return err
	}
	if r, err = checkResult(r, p.now()); err != nil {
		return err
	}
	v, err := encodeResult(r)
	if err != nil {
		return err
	}
	p.results.mu.RLock()
	defer p.results.mu.RUnlock()
	b := p.db.NewBatch()
	defer func() { _ = b.Close() }()
	if err := b.Set(resultRecordKey(key), v, nil); err != nil {
		return unavailable(err)
	}
	if err := b.Set(resultExpKey(key, r.ExpiresAt), nil, nil); err != nil {
		return unavailable(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return unavailable(err)
	}
	p.results.floor.lower(max(r.ExpiresAt.UnixNano(), 0))
	return nil
}

// GetResult reads the result stored under secret; see Results.
func (p *Pebble) GetResult(ctx context.Context, secret string) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	key, err := lookupKey(secret)
	if err != nil {
		return Result{}, err
	}
	v, err := p.getValue(resultRecordKey(key))
	if errors.Is(err, ErrNotFound) {
		return Result{}, errNoResult
	}
	if err != nil {
		return Result{}, unavailable(err)
	}
	r, err := decodeResult(v)
	if err != nil {
		return Result{}, err
	}
	if r.expired(p.now()) {
		return Result{}, errNoResult
	}
	return r, nil
}

// PurgeResults removes the results expired at now, found through their
// index in bounded unsynced batches (a purge undone by a crash is done
// again by the next one; meanwhile GetResult does not return them).
func (p *Pebble) PurgeResults(ctx context.Context, now time.Time) (int, error) {
	from, version := p.results.floor.read()
	if from > now.UnixNano() {
		return 0, nil // no entry is that old
	}
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n, handled, err := p.purgeResults(from, now)
		removed += n
		if err != nil {
			return removed, unavailable(err)
		}
		if handled < purgeResultsBatch {
			break
		}
	}
	// every entry at or before now is gone, unless a put added one since
	// the floor was read (then the floor is left where it is)
	p.results.floor.raise(max(now.UnixNano(), 0)+1, version)
	return removed, nil
}

// purgeResults removes up to purgeResultsBatch expiry entries from from to
// now with their results, when the result is still the one the entry was
// written for, and reports how many results and entries it removed.
func (p *Pebble) purgeResults(from int64, now time.Time) (int, int, error) {
	p.results.mu.Lock()
	defer p.results.mu.Unlock()
	keys, entries, err := p.dueKeys(kindResultExp, from, now, purgeResultsBatch)
	if err != nil || len(entries) == 0 {
		return 0, 0, err
	}
	b := p.db.NewBatch()
	defer func() { _ = b.Close() }()
	removed := 0
	for i, key := range keys {
		if err := b.Delete(entries[i], nil); err != nil {
			return 0, 0, err
		}
		v, err := p.getValue(resultRecordKey(key))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		r, err := decodeResult(v)
		if err != nil {
			return 0, 0, err
		}
		if !bytes.Equal(resultExpKey(key, r.ExpiresAt), entries[i]) {
			continue // replaced since with another expiry: a stale entry
		}
		if err := b.Delete(resultRecordKey(key), nil); err != nil {
			return 0, 0, err
		}
		removed++
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, 0, err
	}
	return removed, len(entries), nil
}

var _ Results = (*Pebble)(nil)
