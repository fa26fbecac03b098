package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Key layout of the Pebble store. Every key starts with one byte naming
// its kind; times are 8 bytes of big-endian unix nanoseconds, so each
// index sorts by time, then by record key.
const (
	kindRecord   = 'e' // e key -> JSON Event without its body, payload and headers
	kindBody     = 'b' // b key -> body, written once at enqueue
	kindDue      = 'q' // q due key -> nothing: queued records by due time
	kindLease    = 'l' // l expiry key -> nothing: delivering records by lease expiry
	kindFinished = 'f' // f updatedAt key -> nothing: finished records (every status but queued and delivering), but those written by Record
	kindByID     = 'i' // i idHook(id, hook) key -> nothing
	kindDedup    = 'd' // d idHook(id, hook) -> expiry (8 bytes)
	kindDedupExp = 'x' // x expiry idHook(id, hook) -> nothing: dedup marks by expiry
	kindStatus   = 's' // s status 0 key -> nothing: records by status, for listings
	kindByHook   = 'H' // H idHook(hook, "") key -> receivedAt (8 bytes) status: records of a hook, oldest first
	kindPayload  = 'P' // P key -> received payload (Event.Payload), when there is one
	kindHeaders  = 'Y' // Y key -> received headers (see encodeHeaders), when there are some
	kindLayout   = 'V' // V -> version of the key layout (1: records have their H entry)
	kindGroup    = 'g' // g first key -> the records of one Record call (see pebble_segments.go)
	// 'h' and 'k' hold issued hooks: see tokens_pebble.go
	// 'R' and 'X' hold request-reply results: see results_pebble.go
)

// valueSeparationMin is the size from which a value is kept in a blob
// file rather than in the tables.
const valueSeparationMin = 256

// PebbleLogger receives Pebble's log lines. *zap.SugaredLogger satisfies
// it (as does pebble.Logger). Fatalf is called on a corrupt database and
// must not return.
type PebbleLogger interface {
	Infof(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// PebbleOptions configure the embedded store. By default it holds about
// 48 MiB of memory: the block cache and up to two memtables.
type PebbleOptions struct {
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// CacheSize is the block cache in bytes. Default 16 MiB.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes; up to two are
	// held while one is flushed. Default 16 MiB.
	MemTableSize uint64
	// Logger receives Pebble's logs; nil drops its informational lines
	// and writes errors to the standard logger.
	Logger PebbleLogger
	// MinFreeBytes is the free space under which Enqueue is refused with
	// ErrUnavailable (the sender gets 503), checked at most every 100ms.
	// Pebble ends the process when a WAL write fails, so accepts stop
	// before the disk is full, and the margin is left to delivery
	// records, which let the queue drain. Default 64 MiB; negative: no
	// check.
	MinFreeBytes int64
}

// Pebble is the embedded store: a Pebble database in one directory.
//
// Durability: Enqueue returns only once its records (and its
// deduplication mark) are in a synced WAL batch; Pebble's commit pipeline
// shares one fsync among concurrent enqueues. Every other change (leases,
// acks, retries, deferrals, dead marks, attempts, releases, purges, trims,
// and the run-log records of Record) is written unsynced. Replay is
// synced. Because the WAL is written in order, each synced write also
// makes every earlier unsynced one durable.
//
// So a crash (of the process or of the machine) can:
//   - undo state changes made after the last synced write: an event acked
//     just before the crash is delivered once more (at least once; the
//     Idempotency-Key is the same), and the run log may miss the last
//     attempts of an event, which then gets those attempts again;
//   - deliver an event whose sender was answered with an error, if the
//     write reached the disk before the error was returned.
//
// It cannot lose an event that Enqueue accepted (the sender's 202), nor
// its deduplication mark, nor mix up two events: records are never
// rewritten with another event's content and an outcome is recorded only
// for the lease generation it names. At open, records that were being
// delivered are due again at once.
//
// A disk that fills up: accepts are refused (ErrUnavailable) while less
// than PebbleOptions.MinFreeBytes is free. A write that fails all the same
// ends the process (Pebble cannot go on after a failed WAL write): as with
// a crash, nothing accepted is lost, and the request in flight gets no 202.
//
// Every state change is one write batch; lookups are point reads or
// bounded iterations of an index: due records by due time, leases by
// expiry, finished records by change time, records by event id, by status
// and by hook (with their receive time and status), dedup marks by (hook,
// id) and by expiry. Counts by hook and status are kept in memory, rebuilt
// at open. Bodies, received payloads and headers are kept apart from the
// records, so listings and counts do not read them.
type Pebble struct {
	dir   string
	db    *pebble.DB
	lock  *pebble.Lock
	cache interface{ Unref() }
	now   func() time.Time
	keys  keyGen

	// records serialize changes of one record; dedups the enqueues of one
	// (hook, id). A holder of one stripe never waits for another, and
	// holders of several (Lease, Purge) hold multi first, so no lock
	// cycle can form.
	records [4096]sync.Mutex
	dedups  [4096]sync.Mutex
	multi   sync.Mutex
	seed    maphash.Seed

	countsMu sync.Mutex
	counts   map[string]map[Status]int

	// lags bounds the time of a record's key against its ReceivedAt.
	lags lagRange
	// trimFloors: per hook, a key below which the hook has no finished
	// record (see Trim).
	trimMu     sync.Mutex
	trimFloors map[string]string

	// floors of the due (0) and lease (1) indexes
	floors [2]floor

	minFree int64
	// free space of dir at the last check (bytes), and when (unix nanos)
	free, freeAt atomic.Int64
	// hooksMu serializes changes of issued hooks (tokens_pebble.go)
	hooksMu sync.Mutex
	// results: see results_pebble.go
	results pebbleResults

	// segs holds the bytes of the records of groups (pebble_segments.go);
	// groupCounts counts them by hook, groupFloors is per hook a group
	// key below which the hook has no grouped record
	segs        *segments
	groupMu     sync.Mutex
	groupCounts map[string]int
	groupFloors map[string]string
	// groupBuf is the scratch space of recordGroup
	groupBufMu sync.Mutex
	groupBuf   *recordBuf
}

// floor is a lower bound of the live entries of the due or the lease
// index, so that Lease does not step again over the deletions at the start
// of the index (a queue in an LSM tree leaves them there until compactions
// drop them). Writers lower it after each commit that adds an entry; Lease
// raises it past what it consumed, unless a writer lowered it meanwhile
// (that writer's entry may be newer than what Lease read).
type floor struct {
	mu      sync.Mutex
	at      int64 // unix nanoseconds
	version uint64
}

func (f *floor) read() (int64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, f.version
}

func (f *floor) lower(at int64) {
	f.mu.Lock()
	f.version++
	f.at = min(f.at, at)
	f.mu.Unlock()
}

func (f *floor) raise(at int64, version uint64) {
	f.mu.Lock()
	if f.version == version {
		f.at = max(f.at, at)
	}
	f.mu.Unlock()
}

// floorOf is the floor of an index kind, -1 for none.
func floorOf(kind byte) int {
	switch kind {
	case kindDue:
		return 0
	case kindLease:
		return 1
	}
	return -1
}

// batch is one write batch that remembers the earliest due and lease
// entries it adds, to lower the floors once committed.
type batch struct {
	*pebble.Batch
	low   [2]int64
	added [2]bool
}

func (p *Pebble) newBatch() *batch { return &batch{Batch: p.db.NewBatch()} }

// setIndex adds the index entry of ev.
func (b *batch) setIndex(ev *Event) error {
	k := indexKey(ev)
	if i := floorOf(k[0]); i >= 0 {
		t := max(ev.DueAt.UnixNano(), 0)
		if !b.added[i] || t < b.low[i] {
			b.low[i] = t
		}
		b.added[i] = true
	}
	return b.Set(k, nil, nil)
}

// commit commits b and lowers the floors below its entries.
func (p *Pebble) commit(b *batch, o *pebble.WriteOptions) error {
	if err := b.Commit(o); err != nil {
		return err
	}
	p.lowerFloors(b)
	return nil
}

func (p *Pebble) lowerFloors(b *batch) {
	for i, added := range b.added {
		if added {
			p.floors[i].lower(b.low[i])
		}
	}
}

// discardInfo is the default logger: Pebble's informational lines are
// dropped, errors go to the standard logger.
type discardInfo struct{}

func (discardInfo) Infof(string, ...any) {}

func (discardInfo) Errorf(format string, args ...any) { log.Printf("event store: "+format, args...) }

func (discardInfo) Fatalf(format string, args ...any) { log.Fatalf("event store: "+format, args...) }

// OpenPebble opens (or creates) the store in dir. A directory held by
// another process (or already open in this one) is refused at once, with
// an error that says so.
func OpenPebble(dir string, opts PebbleOptions) (*Pebble, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 16 << 20
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = 16 << 20
	}
	if opts.Logger == nil {
		opts.Logger = discardInfo{}
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("event store %s: %w", dir, err)
	}
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return nil, fmt.Errorf("event store %s: %w", dir, err)
		}
		return nil, fmt.Errorf("event store %s is in use by another process (%v)", dir, err)
	}
	cache := pebble.NewCache(opts.CacheSize)
	po := &pebble.Options{
		Cache:              cache,
		MemTableSize:       opts.MemTableSize,
		Logger:             opts.Logger,
		Lock:               lock,
		FormatMajorVersion: pebble.FormatNewest,
	}
	// Bloom filters (every level inherits them): a dedup lookup of a new id
	// and a point read of a record skip the tables without the key instead
	// of reading their blocks.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Bodies, payloads, headers, records and run log groups go to blob
	// files when flushed, written once: compactions move references to
	// them instead of rewriting them at every level (async events are
	// written at the rate of requests, and their bodies are read once).
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           valueSeparationMin,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		cache.Unref()
		_ = lock.Close()
		return nil, fmt.Errorf("event store %s: %w", dir, err)
	}
	p := &Pebble{dir: dir, db: db, lock: lock, cache: cache, now: opts.Now, seed: maphash.MakeSeed(), minFree: opts.MinFreeBytes}
	if p.segs, err = openSegments(dir); err != nil {
		_ = db.Close()
		cache.Unref()
		_ = lock.Close()
		return nil, fmt.Errorf("event store %s: %w", dir, err)
	}
	if err := p.recover(); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("event store %s: %w", dir, err)
	}
	return p, nil
}

// Close closes the database and releases its directory.
func (p *Pebble) Close() error {
	err := p.db.Close()
	p.cache.Unref()
	return errors.Join(err, p.segs.close(), p.lock.Close())
}

func prefixed(kind byte, parts ...[]byte) []byte {
	n := 1
	for _, part := range parts {
		n += len(part)
	}
	k := make([]byte, 1, n)
	k[0] = kind
	for _, part := range parts {
		k = append(k, part...)
	}
	return k
}

func recordKey(key string) []byte { return prefixed(kindRecord, []byte(key)) }
func bodyKey(key string) []byte   { return prefixed(kindBody, []byte(key)) }

// indexKey is the entry of ev in the index of its status (nil for none).
func indexKey(ev *Event) []byte {
	switch ev.Status {
	case StatusQueued:
		return prefixed(kindDue, unixBytes(ev.DueAt), []byte(ev.Key))
	case StatusDelivering:
		return prefixed(kindLease, unixBytes(ev.DueAt), []byte(ev.Key))
	case "":
		return nil
	}
	return prefixed(kindFinished, unixBytes(ev.UpdatedAt), []byte(ev.Key))
}

func payloadKey(key string) []byte { return prefixed(kindPayload, []byte(key)) }
func headersKey(key string) []byte { return prefixed(kindHeaders, []byte(key)) }

// hookPrefix starts the entries of a hook in the hook index.
func hookPrefix(hook string) []byte { return prefixed(kindByHook, idHook(hook, "")) }

// hookEntry is the entry of ev in the hook index; hookValue its value: the
// receive time and the status, so counts and trims read no record.
func hookEntry(ev *Event) []byte { return append(hookPrefix(ev.Hook), ev.Key...) }

func hookValue(ev *Event) []byte { return append(unixBytes(ev.ReceivedAt), ev.Status...) }

// splitHookValue reads a hook index value: the receive time (unix
// nanoseconds) and the status.
func splitHookValue(v []byte) (at int64, status Status, ok bool) {
	if len(v) <= 8 {
		return 0, "", false
	}
	return readInt(v[:8]), Status(v[8:]), true
}

// statusKey is the entry of ev in the listing index of its status.
func statusKey(ev *Event) []byte {
	return prefixed(kindStatus, []byte(ev.Status), []byte{0}, []byte(ev.Key))
}

func (p *Pebble) byIDKey(ev *Event) []byte {
	return prefixed(kindByID, idHook(ev.ID, ev.Hook), []byte(ev.Key))
}

// upTo is the exclusive upper bound of an index's entries at or before t.
func upTo(kind byte, t time.Time) []byte {
	return prefixed(kind, binary.BigEndian.AppendUint64(nil, uint64(max(t.UnixNano(), 0))+1))
}

func (p *Pebble) recordStripe(key string) *sync.Mutex {
	return &p.records[maphash.String(p.seed, key)%uint64(len(p.records))]
}

func (p *Pebble) dedupStripe(dk []byte) *sync.Mutex {
	return &p.dedups[maphash.Bytes(p.seed, dk)%uint64(len(p.dedups))]
}

// lockRecords locks the stripes of keys (each once) and returns the
// unlock. Only holders of p.multi call it.
func (p *Pebble) lockRecords(keys []string) func() {
	var held []*sync.Mutex
	for _, k := range keys {
		m := p.recordStripe(k)
		if !slices.Contains(held, m) {
			m.Lock()
			held = append(held, m)
		}
	}
	return func() {
		for _, m := range held {
			m.Unlock()
		}
	}
}

func (p *Pebble) getValue(key []byte) ([]byte, error) {
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	return out, closer.Close()
}

// get reads a record with an index entry (not one of a group).
func (p *Pebble) get(key string) (*Event, error) {
	v, err := p.getValue(recordKey(key))
	if err != nil {
		return nil, err
	}
	var ev Event
	if err := json.Unmarshal(v, &ev); err != nil {
		return nil, fmt.Errorf("record %s: %w", key, err)
	}
	return &ev, nil
}

// put adds the record of ev (without its body) to b.
func putRecord(b *batch, ev *Event) error {
	rec := *ev
	stripDetail(&rec)
	v, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	return b.Set(recordKey(ev.Key), v, nil)
}

// move adds to b the change of ev to status, due at due (ignored for
// final statuses), with its index entries; ev is updated.
func (p *Pebble) move(b *batch, ev *Event, status Status, due, now time.Time) error {
	if old := indexKey(ev); old != nil {
		if err := b.Delete(old, nil); err != nil {
			return err
		}
	}
	if status != ev.Status {
		if err := b.Delete(statusKey(ev), nil); err != nil {
			return err
		}
		if err := b.Set(statusKey(&Event{Key: ev.Key, Status: status}), nil, nil); err != nil {
			return err
		}
		if err := b.Set(hookEntry(ev), hookValue(&Event{ReceivedAt: ev.ReceivedAt, Status: status}), nil); err != nil {
			return err
		}
	}
	ev.Status, ev.UpdatedAt, ev.DueAt = status, now, time.Time{}
	if !final(status) {
		ev.DueAt = due
	}
	if err := b.setIndex(ev); err != nil {
		return err
	}
	return putRecord(b, ev)
}

// count moves n records of hook from one status to another; an empty
// status is none (a new or removed record). Counts are changed after the
// commit, so one may briefly go below zero (a record leased before its
// enqueue is counted); each change is applied exactly once, so the sums
// are exact once the writes are done.
func (p *Pebble) count(hook string, from, to Status, n int) {
	if from == to {
		return
	}
	p.countsMu.Lock()
	defer p.countsMu.Unlock()
	m := p.counts[hook]
	if m == nil {
		m = map[Status]int{}
		p.counts[hook] = m
	}
	if from != "" {
		if m[from] -= n; m[from] == 0 {
			delete(m, from)
		}
	}
	if to != "" {
		if m[to] += n; m[to] == 0 {
			delete(m, to)
		}
	}
	if len(m) == 0 {
		delete(p.counts, hook)
	}
}

// recover counts the records by hook and status, makes the ones that were
// being delivered due now (their workers are gone), seeds the keys, notes
// the lags of receive times and adds the hook index to a store written
// before it existed.
func (p *Pebble) recover() error {
	p.counts = map[string]map[Status]int{}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindRecord}, UpperBound: []byte{kindRecord + 1}})
	if err != nil {
		return err
	}
	var leased []*Event
	index, err := p.indexHooks()
	if err != nil {
		_ = it.Close()
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		var ev Event
		if err := json.Unmarshal(it.Value(), &ev); err != nil {
			_ = it.Close()
			return fmt.Errorf("record %s: %w", it.Key()[1:], err)
		}
		p.count(ev.Hook, "", ev.Status, 1)
		p.lags.note(&ev)
		if err := index.add(&ev); err != nil {
			_ = it.Close()
			return err
		}
		if ev.Status == StatusDelivering {
			leased = append(leased, &ev)
		}
	}
	if it.Last() {
		p.keys.seed(string(it.Key()[1:]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if err := index.done(); err != nil {
		return err
	}
	if err := p.recoverGroups(); err != nil {
		return err
	}
	if len(leased) == 0 {
		return nil
	}
	now := p.now()
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	for _, ev := range leased {
		if err := p.move(b, ev, StatusQueued, now, now); err != nil {
			return err
		}
	}
	if err := p.commit(b, pebble.Sync); err != nil {
		return err
	}
	for _, ev := range leased {
		p.count(ev.Hook, StatusDelivering, StatusQueued, 1)
	}
	return nil
}

// Enqueue writes the records of one request, their index entries and the
// deduplication mark in one synced batch. With opts.LeaseFor they are
// written delivering (generation 1), their lease expiry indexed.
func (p *Pebble) Enqueue(ctx context.Context, evs []*Event, opts EnqueueOptions) error {
	if err := checkBatch(evs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.checkFree(); err != nil {
		return err
	}
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	var now time.Time
	if opts.Dedup > 0 {
		dk := idHook(evs[0].ID, evs[0].Hook)
		m := p.dedupStripe(dk)
		m.Lock()
		defer m.Unlock()
		now = p.now()
		mark := prefixed(kindDedup, dk)
		v, err := p.getValue(mark)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return unavailable(err)
		case len(v) == 8 && readInt(v) > now.UnixNano():
			return ErrDuplicate
		default: // an expired mark: its expiry entry goes with it
			if err := b.Delete(prefixed(kindDedupExp, v, dk), nil); err != nil {
				return unavailable(err)
			}
		}
		exp := unixBytes(now.Add(opts.Dedup))
		if err := b.Set(mark, exp, nil); err != nil {
			return unavailable(err)
		}
		if err := b.Set(prefixed(kindDedupExp, exp, dk), nil, nil); err != nil {
			return unavailable(err)
		}
	} else {
		now = p.now()
	}
	keys := p.keys.next(now, len(evs))
	recs := make([]Event, len(evs))
	for i, ev := range evs {
		rec := *ev
		rec.Key, rec.Status, rec.UpdatedAt, rec.DueAt, rec.Attempts, rec.Deferrals, rec.Gen = keys[i], StatusQueued, now, now, nil, 0, 0
		if rec.ReceivedAt.IsZero() {
			rec.ReceivedAt = now
		}
		if opts.LeaseFor > 0 {
			rec.Status, rec.DueAt, rec.Gen = StatusDelivering, now.Add(opts.LeaseFor), 1
		}
		recs[i] = rec
		if err := p.putNew(b, &rec); err != nil {
			return unavailable(err)
		}
	}
	if err := p.commit(b, pebble.Sync); err != nil {
		return unavailable(err)
	}
	p.count(recs[0].Hook, "", recs[0].Status, len(recs))
	for i := range recs {
		p.lags.note(&recs[i])
	}
	for i, ev := range evs {
		rec := recs[i]
		ev.Key, ev.Status, ev.UpdatedAt, ev.DueAt, ev.ReceivedAt, ev.Attempts, ev.Deferrals, ev.Gen = rec.Key, rec.Status, rec.UpdatedAt, rec.DueAt, rec.ReceivedAt, nil, 0, rec.Gen
	}
	return nil
}

// checkFree refuses accepts while the disk has less than MinFreeBytes
// free.
func (p *Pebble) checkFree() error {
	if p.minFree < 0 {
		return nil
	}
	free := p.free.Load()
	if now := time.Now().UnixNano(); now-p.freeAt.Load() > int64(100*time.Millisecond) {
		u, err := vfs.Default.GetDiskUsage(p.dir)
		if err != nil {
			return fmt.Errorf("%w: free space of %s: %v", ErrUnavailable, p.dir, err)
		}
		free = int64(min(u.AvailBytes, 1<<62))
		p.free.Store(free)
		p.freeAt.Store(now)
	}
	if free < p.minFree {
		return fmt.Errorf("%w: %s has %d bytes free, accepts stop under %d", ErrUnavailable, p.dir, free, p.minFree)
	}
	return nil
}

// dueKeys returns the record keys of up to limit entries of an index
// whose time is from from (unix nanoseconds) to t, with the entries
// themselves.
func (p *Pebble) dueKeys(kind byte, from int64, t time.Time, limit int) ([]string, [][]byte, error) {
	if limit <= 0 {
		return nil, nil, nil
	}
	lower := prefixed(kind, binary.BigEndian.AppendUint64(nil, uint64(max(from, 0))))
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upTo(kind, t)})
	if err != nil {
		return nil, nil, err
	}
	var keys []string
	var entries [][]byte
	for it.First(); it.Valid() && len(keys) < limit; it.Next() {
		if k := it.Key(); len(k) > 9 {
			keys = append(keys, string(k[9:]))
			entries = append(entries, bytes.Clone(k))
		}
	}
	return keys, entries, errors.Join(it.Error(), it.Close())
}

// Lease marks up to limit due records delivering with their next
// generation, in one unsynced batch: expired leases first, then queued
// records in due order.
func (p *Pebble) Lease(ctx context.Context, limit int, leaseFor time.Duration) ([]*Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.multi.Lock()
	defer p.multi.Unlock()
	now := p.now()
	leaseFloor, leaseVersion := p.floors[1].read()
	dueFloor, dueVersion := p.floors[0].read()
	keys, entries, err := p.dueKeys(kindLease, leaseFloor, now, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	want := limit - len(keys)
	more, moreEntries, err := p.dueKeys(kindDue, dueFloor, now, want)
	if err != nil {
		return nil, unavailable(err)
	}
	// What Lease consumes, it raises the floors past: up to now where it
	// read all that was due, else up to the last entry it took.
	raise := func(f *floor, version uint64, entries [][]byte, exhausted bool) {
		switch {
		case exhausted:
			f.raise(max(now.UnixNano(), 0)+1, version)
		case len(entries) > 0:
			f.raise(readInt(entries[len(entries)-1][1:9]), version)
		}
	}
	leaseEntries := entries
	raiseFloors := func() {
		raise(&p.floors[1], leaseVersion, leaseEntries, len(leaseEntries) < limit)
		if want > 0 {
			raise(&p.floors[0], dueVersion, moreEntries, len(moreEntries) < want)
		}
	}
	keys, entries = append(keys, more...), append(entries, moreEntries...)
	if len(keys) == 0 {
		raiseFloors()
		return nil, nil
	}
	unlock := p.lockRecords(keys)
	defer unlock()
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	var out []*Event
	var was []Status
	for i, key := range keys {
		ev, err := p.get(key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, unavailable(err)
		}
		if err != nil || !bytes.Equal(indexKey(ev), entries[i]) {
			// Not the record's current entry: a stale one. (A record
			// changed since the index was read has its new entry.)
			if err := b.Delete(entries[i], nil); err != nil {
				return nil, unavailable(err)
			}
			continue
		}
		from := ev.Status
		ev.Gen++
		if err := p.move(b, ev, StatusDelivering, now.Add(leaseFor), now); err != nil {
			return nil, unavailable(err)
		}
		if ev.Body, err = p.getValue(bodyKey(key)); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, unavailable(err)
		}
		out = append(out, ev)
		was = append(was, from)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, unavailable(err)
	}
	raiseFloors()
	p.lowerFloors(b)
	for i, ev := range out {
		p.count(ev.Hook, was[i], StatusDelivering, 1)
	}
	return out, nil
}

// leased applies change to the record of l in one unsynced batch if l is
// its current lease.
func (p *Pebble) leased(ctx context.Context, l Lease, change func(b *batch, ev *Event, now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := p.recordStripe(l.Key)
	m.Lock()
	defer m.Unlock()
	ev, err := p.get(l.Key)
	if errors.Is(err, ErrNotFound) {
		return ErrStaleLease
	}
	if err != nil {
		return unavailable(err)
	}
	if err := checkLease(ev, l); err != nil {
		return err
	}
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	if err := change(b, ev, p.now()); err != nil {
		return unavailable(err)
	}
	if err := p.commit(b, pebble.NoSync); err != nil {
		return unavailable(err)
	}
	p.count(ev.Hook, StatusDelivering, ev.Status, 1)
	return nil
}

func (p *Pebble) finish(ctx context.Context, l Lease, a Attempt, status Status, after time.Duration) error {
	return p.leased(ctx, l, func(b *batch, ev *Event, now time.Time) error {
		ev.Attempts = append(ev.Attempts, a)
		return p.move(b, ev, status, now.Add(after), now)
	})
}

// Ack records a delivered record.
func (p *Pebble) Ack(ctx context.Context, l Lease, a Attempt) error {
	return p.finish(ctx, l, a, StatusDelivered, 0)
}

// Retry queues the record again after the delay.
func (p *Pebble) Retry(ctx context.Context, l Lease, a Attempt, after time.Duration) error {
	return p.finish(ctx, l, a, StatusQueued, after)
}

// Dead records the record as dead.
func (p *Pebble) Dead(ctx context.Context, l Lease, a Attempt) error {
	return p.finish(ctx, l, a, StatusDead, 0)
}

// Defer queues the record again after the delay, without an attempt.
func (p *Pebble) Defer(ctx context.Context, l Lease, after time.Duration) error {
	return p.leased(ctx, l, func(b *batch, ev *Event, now time.Time) error {
		ev.Deferrals++
		return p.move(b, ev, StatusQueued, now.Add(after), now)
	})
}

// Release gives a leased record back, due now, without an attempt.
func (p *Pebble) Release(ctx context.Context, l Lease) error {
	err := p.leased(ctx, l, func(b *batch, ev *Event, now time.Time) error {
		return p.move(b, ev, StatusQueued, now, now)
	})
	if errors.Is(err, ErrStaleLease) {
		return nil
	}
	return err
}

// Get returns one record with its body.
func (p *Pebble) Get(ctx context.Context, key string) (*Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ev, err := p.get(key)
	if errors.Is(err, ErrNotFound) {
		ev, _, _, err = p.getGrouped(key, true)
		return ev, unavailable(err)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	switch ev.Body, err = p.getValue(bodyKey(key)); {
	case err == nil && ev.Body == nil:
		ev.Body = []byte{} // kept, and empty
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, unavailable(err)
	}
	if ev.Payload, err = p.getValue(payloadKey(key)); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, unavailable(err)
	}
	h, err := p.getValue(headersKey(key))
	switch {
	case err == nil:
		if ev.Headers, err = decodeHeaders(h); err != nil {
			return nil, unavailable(fmt.Errorf("record %s: %w", key, err))
		}
	case !errors.Is(err, ErrNotFound):
		return nil, unavailable(err)
	}
	return ev, nil
}

// Replay queues a delivered or dead record again, due now (synced: an
// operator was told it is queued). It holds p.multi, so that a trim reads
// the hook index of finished records without a replay changing them
// meanwhile.
func (p *Pebble) Replay(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.multi.Lock()
	defer p.multi.Unlock()
	m := p.recordStripe(key)
	m.Lock()
	defer m.Unlock()
	ev, err := p.get(key)
	if errors.Is(err, ErrNotFound) {
		ev, e, gk, err := p.getGrouped(key, true)
		if err != nil {
			return unavailable(err)
		}
		if !Replayable(ev) {
			return ErrNotReplayable
		}
		return unavailable(p.replayGrouped(ev, e, gk))
	}
	if err != nil {
		return unavailable(err)
	}
	kept, err := p.peek(bodyKey(key), func([]byte) bool { return true })
	if err != nil {
		return unavailable(err)
	}
	if kept {
		ev.Body = []byte{} // read back with the record: only whether it was kept counts here
	}
	if !Replayable(ev) {
		return ErrNotReplayable
	}
	from := ev.Status
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	now := p.now()
	if err := p.move(b, ev, StatusQueued, now, now); err != nil {
		return unavailable(err)
	}
	if err := p.commit(b, pebble.Sync); err != nil {
		return unavailable(err)
	}
	p.count(ev.Hook, from, StatusQueued, 1)
	return nil
}

// prefixEnd is the smallest key above every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Purge removes delivered and dead records last changed before the given
// time (found through their index, in bounded unsynced batches) and
// expired deduplication marks (found through theirs).
func (p *Pebble) Purge(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n, handled, err := p.purgeRecords(before.Add(-time.Nanosecond), 1000)
		removed += n
		if err != nil {
			return removed, unavailable(err)
		}
		if handled == 0 {
			break
		}
	}
	for more := true; more; {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		var n int
		var err error
		n, more, err = p.purgeGroups(max(before.UnixNano(), 0), 1000)
		removed += n
		if err != nil {
			return removed, unavailable(err)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n, err := p.purgeMarks(p.now(), 1000)
		if err != nil {
			return removed, unavailable(err)
		}
		if n == 0 {
			return removed, nil
		}
	}
}

// purgeRecords removes the finished records of up to limit index entries
// at or before t, and reports how many records it removed and how many
// entries it handled.
func (p *Pebble) purgeRecords(t time.Time, limit int) (int, int, error) {
	p.multi.Lock()
	defer p.multi.Unlock()
	keys, entries, err := p.dueKeys(kindFinished, 0, t, limit)
	if err != nil || len(keys) == 0 {
		return 0, 0, err
	}
	unlock := p.lockRecords(keys)
	defer unlock()
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	var gone []*Event
	for i, key := range keys {
		if err := b.Delete(entries[i], nil); err != nil {
			return 0, 0, err
		}
		ev, err := p.get(key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		if !bytes.Equal(indexKey(ev), entries[i]) {
			continue // replayed since: a stale entry
		}
		if err := p.deleteRecord(b, ev); err != nil {
			return 0, 0, err
		}
		gone = append(gone, ev)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, 0, err
	}
	for _, ev := range gone {
		p.count(ev.Hook, ev.Status, "", 1)
	}
	return len(gone), len(keys), nil
}

// purgeMarks removes up to limit deduplication marks expired at t and
// reports how many it removed.
func (p *Pebble) purgeMarks(t time.Time, limit int) (int, error) {
	p.multi.Lock()
	defer p.multi.Unlock()
	_, entries, err := p.dueKeys(kindDedupExp, 0, t, limit)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	var held []*sync.Mutex
	defer func() {
		for _, m := range held {
			m.Unlock()
		}
	}()
	for _, e := range entries {
		exp, dk := e[1:9], e[9:]
		if m := p.dedupStripe(dk); !slices.Contains(held, m) {
			m.Lock()
			held = append(held, m)
		}
		if err := b.Delete(e, nil); err != nil {
			return 0, err
		}
		mark := prefixed(kindDedup, dk)
		v, err := p.getValue(mark)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if bytes.Equal(v, exp) {
			if err := b.Delete(mark, nil); err != nil {
				return 0, err
			}
		}
	}
	return len(entries), b.Commit(pebble.NoSync)
}

// Stats reads the counts kept in memory and the first entries of the due
// and lease indexes.
func (p *Pebble) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	st := Stats{Counts: map[string]map[Status]int{}}
	p.countsMu.Lock()
	for hook, m := range p.counts {
		for s, n := range m {
			if n <= 0 {
				continue // a change in flight, see count
			}
			if st.Counts[hook] == nil {
				st.Counts[hook] = map[Status]int{}
			}
			st.Counts[hook][s] = n
		}
	}
	p.countsMu.Unlock()
	now := p.now()
	for _, kind := range []byte{kindDue, kindLease} {
		from, _ := p.floors[floorOf(kind)].read()
		_, entries, err := p.dueKeys(kind, from, now, 1)
		if err != nil {
			return Stats{}, unavailable(err)
		}
		if len(entries) == 1 {
			st.OldestDue = max(st.OldestDue, now.Sub(time.Unix(0, readInt(entries[0][1:9]))))
		}
	}
	return st, nil
}

var _ Store = (*Pebble)(nil)
