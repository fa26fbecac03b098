package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Request-reply results in the NATS store live in the KV bucket
// <prefix>_results, read through the stream leader like the events:
//
//	m.<sha256hex(secret)>               -> JSON natsResult
//	c.<sha256hex(secret)>.<gen>.<i>     -> chunk i of the body of generation gen
//
// The secret itself is never written. A body up to resultInline bytes is
// kept in the m value; a longer one is split into chunks that fit the
// servers' max_payload (1 MiB by default), written first, under a fresh
// generation, so the m value (written last) switches atomically from the
// old body to the new one; the old chunks are removed afterwards. Every
// write waits for JetStream's acknowledgement.
//
// Every message carries a per-message TTL (nats-server 2.11 or later): the
// time until the result expires plus resultTTLGrace. So the servers drop
// expired results by themselves, and with them the chunks that a crash
// between writes or a replace left without an m value; removal markers
// expire too, and nothing stays in the bucket for ever.
//
// PurgeResults removes what expired by the store's clock before the
// servers do: JetStream has no index by a value's time, so it scans the m
// keys (a watch that carries no chunk and a body only up to resultInline),
// read up to the stream leader's last revision of them: the watch may be
// served by a replica that has not applied the latest puts yet, and its
// initial values alone would miss them, or give an older revision that
// the compare-and-set then refuses.
// That costs one pass over the results kept, acceptable for the purge
// interval of minutes, and bounded by the TTLs to the results of one
// retention period.

const (
	// resultInline is the largest body kept in the m value.
	resultInline = 64 << 10
	// resultTTLGrace is how long after its expiry the servers keep a
	// result a purge has not removed.
	resultTTLGrace = time.Minute
	// resultMarkerTTL is how long removal markers stay.
	resultMarkerTTL = time.Minute
	// resultChunkHeadroom is left in each chunk message for its subject
	// and headers.
	resultChunkHeadroom = 4 << 10
	// maxResultReadTries bounds the re-reads of a result replaced or
	// purged while its chunks were being read.
	maxResultReadTries = 3
)

// natsResult is the stored m value: the result, with its body inline or
// the generation, count and total size of its chunks.
type natsResult struct {
	Result
	Gen    string `json:"gen,omitempty"`
	Chunks int    `json:"chunks,omitempty"`
	Size   int    `json:"size,omitempty"`
}

func natsResultKey(key string) string { return "m." + key }

func natsChunkKey(key, gen string, i int) string {
	return "c." + key + "." + gen + "." + strconv.Itoa(i)
}

// setupResults creates (or updates) the results bucket from the store's
// bucket settings, with per-message TTLs.
func (n *NATS) setupResults(ctx context.Context, cfg jetstream.StreamConfig) error {
	cfg.AllowMsgTTL = true
	cfg.SubjectDeleteMarkerTTL = resultMarkerTTL
	if err := n.setupStep(ctx, "stream "+cfg.Name, func(ctx context.Context) (err error) {
		n.resStream, err = n.js.CreateOrUpdateStream(ctx, cfg)
		return err
	}); err != nil {
		return err
	}
	return n.setupStep(ctx, "bucket results", func(ctx context.Context) (err error) {
		n.results, err = n.js.KeyValue(ctx, n.opts.Stream+"_results")
		return err
	})
}

// publishResult writes one message of the bucket and waits for its
// acknowledgement. The operation timeout bounds each message of a result,
// not the whole result (up to 16 MiB).
func (n *NATS) publishResult(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	_, err := n.js.Publish(ctx, "$KV."+n.opts.Stream+"_results."+key, data, jetstream.WithMsgTTL(ttl))
	return unavailable(err)
}

// getResultKV reads one key of the bucket, within the operation timeout.
func (n *NATS) getResultKV(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	return n.results.Get(ctx, key)
}

// readResult reads the m value of key and its revision.
func (n *NATS) readResult(ctx context.Context, key string) (natsResult, uint64, error) {
	e, err := n.getResultKV(ctx, natsResultKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return natsResult{}, 0, ErrNotFound
	}
	if err != nil {
		return natsResult{}, 0, unavailable(err)
	}
	var rec natsResult
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return natsResult{}, 0, fmt.Errorf("stored result: %w", err)
	}
	return rec, e.Revision(), nil
}

// PutResult stores r under secret; see Results. It returns once every
// message is acknowledged.
func (n *NATS) PutResult(ctx context.Context, secret string, r Result) error {
	key, err := resultKey(secret)
	if err != nil {
		return err
	}
	now := n.now()
	if r, err = checkResult(r, now); err != nil {
		return err
	}
	// the TTL is at least the grace, and whole seconds (the servers'
	// granularity)
	ttl := (max(r.ExpiresAt.Sub(now), 0) + resultTTLGrace).Round(time.Second)
	// the result replaced, for its chunks; one unreadable is replaced all
	// the same (its chunks are left to their TTL)
	old, _, err := n.readResult(ctx, key)
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	rec := natsResult{Result: r}
	if len(r.Body) > resultInline {
		if rec.Gen, err = newResultGen(); err != nil {
			return err
		}
		size := max(int(n.nc.MaxPayload())-resultChunkHeadroom, resultChunkHeadroom)
		for off := 0; off < len(r.Body); off += size {
			chunk := r.Body[off:min(off+size, len(r.Body))]
			if err := n.publishResult(ctx, natsChunkKey(key, rec.Gen, rec.Chunks), chunk, ttl); err != nil {
				return err
			}
			rec.Chunks++
		}
		rec.Body, rec.Size = nil, len(r.Body)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := n.publishResult(ctx, natsResultKey(key), v, ttl); err != nil {
		return err
	}
	// the old body's chunks: a failure leaves them to their TTL
	if old.Gen != "" && old.Gen != rec.Gen {
		n.removeChunks(ctx, key, old)
	}
	return nil
}

// newResultGen is a random generation name for the chunks of one put.
func newResultGen() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// removeChunks purges the chunks of rec, leaving those it cannot to their
// TTL.
func (n *NATS) removeChunks(ctx context.Context, key string, rec natsResult) {
	// chunks are at least resultChunkHeadroom long: a larger count is not
	// one this store wrote
	for i := range min(rec.Chunks, MaxResultBody/resultChunkHeadroom) {
		if ctx.Err() != nil {
			return
		}
		opCtx, cancel := n.opCtx(ctx)
		_ = n.results.Purge(opCtx, natsChunkKey(key, rec.Gen, i), jetstream.PurgeTTL(resultMarkerTTL))
		cancel()
	}
}

// GetResult reads the result stored under secret; see Results.
func (n *NATS) GetResult(ctx context.Context, secret string) (Result, error) {
	key, err := lookupKey(secret)
	if err != nil {
		return Result{}, err
	}
	for range maxResultReadTries {
		rec, _, err := n.readResult(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return Result{}, errNoResult
		}
		if err != nil {
			return Result{}, err
		}
		if rec.expired(n.now()) {
			return Result{}, errNoResult
		}
		if rec.Gen == "" {
			return rec.Result, nil
		}
		body, err := n.readChunks(ctx, key, rec)
		if errors.Is(err, ErrNotFound) {
			continue // replaced or purged meanwhile: read it again
		}
		if err != nil {
			return Result{}, err
		}
		rec.Body = body
		return rec.Result, nil
	}
	return Result{}, fmt.Errorf("%w: the stored result's body is incomplete", ErrUnavailable)
}

// readChunks reads the body of rec from its chunks, bounded by the size
// rec gives (itself bounded by MaxResultBody).
func (n *NATS) readChunks(ctx context.Context, key string, rec natsResult) ([]byte, error) {
	if rec.Size <= resultInline || rec.Size > MaxResultBody || rec.Chunks < 1 || rec.Chunks > rec.Size {
		return nil, errors.New("stored result: bad chunk count or size")
	}
	body := make([]byte, 0, rec.Size)
	for i := range rec.Chunks {
		e, err := n.getResultKV(ctx, natsChunkKey(key, rec.Gen, i))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, unavailable(err)
		}
		if len(body)+len(e.Value()) > rec.Size {
			return nil, errors.New("stored result: chunks longer than the body")
		}
		body = append(body, e.Value()...)
	}
	if len(body) != rec.Size {
		return nil, errors.New("stored result: chunks shorter than the body")
	}
	return body, nil
}

// PurgeResults removes the results expired at now (see the scan above);
// a result replaced meanwhile is left alone (compare-and-set on its
// revision).
func (n *NATS) PurgeResults(ctx context.Context, now time.Time) (int, error) {
	type expiredResult struct {
		key string
		rev uint64
		rec natsResult
	}
	entries, err := func() ([]jetstream.KeyValueEntry, error) {
		ctx, cancel := n.opCtx(ctx)
		defer cancel()
		return latestKV(ctx, n.resStream, n.results, "$KV."+n.opts.Stream+"_results.", "m.*", "results")
	}()
	if err != nil {
		return 0, unavailable(err)
	}
	var expired []expiredResult
	for _, e := range entries {
		var rec natsResult
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return 0, fmt.Errorf("stored result %s: %w", e.Key(), err)
		}
		if rec.expired(now) {
			expired = append(expired, expiredResult{key: e.Key()[len("m."):], rev: e.Revision(), rec: rec})
		}
	}
	removed := 0
	for _, x := range expired {
		opCtx, cancel := n.opCtx(ctx)
		err := n.results.Purge(opCtx, natsResultKey(x.key), jetstream.LastRevision(x.rev), jetstream.PurgeTTL(resultMarkerTTL))
		cancel()
		if err != nil && !isConflict(err) {
			return removed, unavailable(err)
		}
		if err == nil {
			removed++
			if x.rec.Gen != "" {
				n.removeChunks(ctx, x.key, x.rec)
			}
		}
	}
	return removed, nil
}

var _ Results = (*NATS)(nil)
