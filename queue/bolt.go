package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEvents = []byte("events") // key -> JSON Event without its body
	bucketBodies = []byte("bodies") // key -> body, written once per enqueue
	bucketDue    = []byte("due")    // due time (8 bytes, big-endian unix nanos) key -> nothing, for queued and delivering records
	bucketDone   = []byte("done")   // updatedAt (8 bytes) key of delivered and dead records -> nothing
	bucketByID   = []byte("byid")   // idHook(id, hook) key -> nothing
	bucketDedup  = []byte("dedup")  // idHook(id, hook) -> expiry (8 bytes)
	bucketCounts = []byte("counts") // uvarint length, hook, status -> count (8 bytes), rebuilt at open
)

// BoltOptions configure the embedded store.
type BoltOptions struct {
	// OpenTimeout bounds the wait for the file lock, so a second opener
	// fails instead of hanging. Default 5s.
	OpenTimeout time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Bolt is the embedded store: one bbolt file, fsync on every commit,
// concurrent writes grouped into one commit (db.Batch).
type Bolt struct {
	db   *bolt.DB
	now  func() time.Time
	keys keyGen
}

// OpenBolt opens (or creates) the store at path. Events that were being
// delivered when the process stopped are due again at once.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Group commit: concurrent writes gather for at most 0.5ms, then share
	// one commit and fsync (bbolt's default of 10ms is a floor on every
	// sender's wait). The freelist is rebuilt at open instead of being
	// written with every commit: fewer pages per fsync, same durability.
	db.MaxBatchDelay = 500 * time.Microsecond
	db.NoFreelistSync = true
	b := &Bolt{db: db, now: opts.Now}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketBodies, bucketDue, bucketDone, bucketByID, bucketDedup, bucketCounts} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			b.keys.seed(string(k))
		}
		return b.recover(tx)
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	return b, nil
}

// recover makes every leased record due now (its worker is gone) and
// rebuilds the counts by hook and status.
func (b *Bolt) recover(tx *bolt.Tx) error {
	now := b.now()
	if err := tx.DeleteBucket(bucketCounts); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketCounts); err != nil {
		return err
	}
	var leased []*Event
	err := tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return err
		}
		if ev.Status == StatusDelivering {
			leased = append(leased, &ev)
		}
		return b.count(tx, ev.Hook, "", ev.Status)
	})
	if err != nil {
		return err
	}
	for _, ev := range leased {
		if err := b.reschedule(tx, ev, StatusQueued, now); err != nil {
			return err
		}
	}
	return nil
}

func countKey(hook string, st Status) []byte {
	k := binary.AppendUvarint(nil, uint64(len(hook)))
	k = append(k, hook...)
	return append(k, st...)
}

// count moves one record of hook from one status to another in the
// counts; an empty status is none (a new or removed record).
func (b *Bolt) count(tx *bolt.Tx, hook string, from, to Status) error {
	if from == to {
		return nil
	}
	counts := tx.Bucket(bucketCounts)
	add := func(st Status, d int64) error {
		if st == "" {
			return nil
		}
		k := countKey(hook, st)
		var n int64
		if v := counts.Get(k); len(v) == 8 {
			n = readInt(v)
		}
		n += d
		if n <= 0 {
			return counts.Delete(k)
		}
		return counts.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
	}
	if err := add(from, -1); err != nil {
		return err
	}
	return add(to, 1)
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

func timeKey(at time.Time, key string) []byte {
	return append(unixBytes(at), key...)
}

func byIDKey(ev *Event) []byte {
	return append(idHook(ev.ID, ev.Hook), ev.Key...)
}

// Enqueue stores the records of one request durably; concurrent calls
// share one commit and fsync. With opts.LeaseFor they are written leased.
func (b *Bolt) Enqueue(ctx context.Context, evs []*Event, opts EnqueueOptions) error {
	if err := checkBatch(evs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := b.now()
	keys := b.keys.next(now, len(evs))
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
	}
	dk := idHook(evs[0].ID, evs[0].Hook)
	err := b.db.Batch(func(tx *bolt.Tx) error {
		if opts.Dedup > 0 {
			dd := tx.Bucket(bucketDedup)
			if v := dd.Get(dk); len(v) == 8 && readInt(v) > now.UnixNano() {
				return ErrDuplicate
			}
			if err := dd.Put(dk, unixBytes(now.Add(opts.Dedup))); err != nil {
				return err
			}
		}
		for i := range recs {
			rec := &recs[i]
			if err := b.count(tx, rec.Hook, "", rec.Status); err != nil {
				return err
			}
			if err := b.put(tx, rec); err != nil {
				return err
			}
			if err := tx.Bucket(bucketBodies).Put([]byte(rec.Key), rec.Body); err != nil {
				return err
			}
			if err := tx.Bucket(bucketByID).Put(byIDKey(rec), nil); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDue).Put(timeKey(rec.DueAt, rec.Key), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	for i, ev := range evs {
		rec := recs[i]
		ev.Key, ev.Status, ev.UpdatedAt, ev.DueAt, ev.ReceivedAt, ev.Attempts, ev.Deferrals, ev.Gen = rec.Key, rec.Status, rec.UpdatedAt, rec.DueAt, rec.ReceivedAt, nil, 0, rec.Gen
	}
	return nil
}

// Lease marks up to max due records delivering and returns them.
func (b *Bolt) Lease(ctx context.Context, max int, leaseFor time.Duration) ([]*Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := b.now()
	limit := unixBytes(now)
	var out []*Event
	// Batch: a lease shares its commit with concurrent enqueues and acks.
	err := b.db.Batch(func(tx *bolt.Tx) error {
		out = out[:0]
		due := tx.Bucket(bucketDue)
		var keys [][]byte
		c := due.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < max && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := due.Delete(k); err != nil {
				return err
			}
			ev, err := b.get(tx, string(k[8:]))
			if errors.Is(err, ErrNotFound) || err == nil && final(ev.Status) {
				continue // stale index entry
			}
			if err != nil {
				return err
			}
			if err := b.count(tx, ev.Hook, ev.Status, StatusDelivering); err != nil {
				return err
			}
			ev.Status, ev.DueAt, ev.UpdatedAt, ev.Gen = StatusDelivering, now.Add(leaseFor), now, ev.Gen+1
			if err := b.put(tx, ev); err != nil {
				return err
			}
			if err := due.Put(timeKey(ev.DueAt, ev.Key), nil); err != nil {
				return err
			}
			ev.Body = bytes.Clone(tx.Bucket(bucketBodies).Get([]byte(ev.Key)))
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// put writes the record of ev; its body is stored once, at enqueue.
func (b *Bolt) put(tx *bolt.Tx, ev *Event) error {
	rec := *ev
	rec.Body = nil
	v, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketEvents).Put([]byte(ev.Key), v)
}

func (b *Bolt) get(tx *bolt.Tx, key string) (*Event, error) {
	v := tx.Bucket(bucketEvents).Get([]byte(key))
	if v == nil {
		return nil, ErrNotFound
	}
	var ev Event
	if err := json.Unmarshal(v, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// reschedule moves ev to status, due at due (no due time for final
// statuses).
func (b *Bolt) reschedule(tx *bolt.Tx, ev *Event, status Status, due time.Time) error {
	dueB, done := tx.Bucket(bucketDue), tx.Bucket(bucketDone)
	if !ev.DueAt.IsZero() {
		if err := dueB.Delete(timeKey(ev.DueAt, ev.Key)); err != nil {
			return err
		}
	}
	if err := b.count(tx, ev.Hook, ev.Status, status); err != nil {
		return err
	}
	if final(ev.Status) {
		if err := done.Delete(timeKey(ev.UpdatedAt, ev.Key)); err != nil {
			return err
		}
	}
	ev.Status, ev.UpdatedAt, ev.DueAt = status, b.now(), time.Time{}
	if final(status) {
		if err := done.Put(timeKey(ev.UpdatedAt, ev.Key), nil); err != nil {
			return err
		}
	} else {
		ev.DueAt = due
		if err := dueB.Put(timeKey(due, ev.Key), nil); err != nil {
			return err
		}
	}
	return b.put(tx, ev)
}

// leased runs change on the record of l if l is its current lease.
func (b *Bolt) leased(l Lease, change func(tx *bolt.Tx, ev *Event) error) error {
	err := b.db.Batch(func(tx *bolt.Tx) error {
		ev, err := b.get(tx, l.Key)
		if errors.Is(err, ErrNotFound) {
			return ErrStaleLease
		}
		if err != nil {
			return err
		}
		if err := checkLease(ev, l); err != nil {
			return err
		}
		return change(tx, ev)
	})
	return unavailable(err)
}

func (b *Bolt) finish(l Lease, a Attempt, status Status, after time.Duration) error {
	return b.leased(l, func(tx *bolt.Tx, ev *Event) error {
		ev.Attempts = append(ev.Attempts, a)
		return b.reschedule(tx, ev, status, b.now().Add(after))
	})
}

// Ack records a delivered record.
func (b *Bolt) Ack(_ context.Context, l Lease, a Attempt) error {
	return b.finish(l, a, StatusDelivered, 0)
}

// Retry queues the record again after the delay.
func (b *Bolt) Retry(_ context.Context, l Lease, a Attempt, after time.Duration) error {
	return b.finish(l, a, StatusQueued, after)
}

// Dead records the record as dead.
func (b *Bolt) Dead(_ context.Context, l Lease, a Attempt) error {
	return b.finish(l, a, StatusDead, 0)
}

// Defer queues the record again after the delay, without an attempt.
func (b *Bolt) Defer(_ context.Context, l Lease, after time.Duration) error {
	return b.leased(l, func(tx *bolt.Tx, ev *Event) error {
		ev.Deferrals++
		return b.reschedule(tx, ev, StatusQueued, b.now().Add(after))
	})
}

// Release gives a leased record back, due now, without an attempt.
func (b *Bolt) Release(_ context.Context, l Lease) error {
	err := b.leased(l, func(tx *bolt.Tx, ev *Event) error {
		return b.reschedule(tx, ev, StatusQueued, b.now())
	})
	if errors.Is(err, ErrStaleLease) {
		return nil
	}
	return err
}

// Get returns one record with its body.
func (b *Bolt) Get(_ context.Context, key string) (*Event, error) {
	var ev *Event
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		if ev, err = b.get(tx, key); err != nil {
			return err
		}
		ev.Body = bytes.Clone(tx.Bucket(bucketBodies).Get([]byte(key)))
		return nil
	})
	return ev, err
}

// Replay queues a delivered or dead record again, due now.
func (b *Bolt) Replay(_ context.Context, key string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		ev, err := b.get(tx, key)
		if err != nil {
			return err
		}
		if !final(ev.Status) {
			return ErrNotReplayable
		}
		return b.reschedule(tx, ev, StatusQueued, b.now())
	})
	return unavailable(err)
}

// List pages through records newest first, filtered; an id is looked up
// in its index.
func (b *Bolt) List(_ context.Context, q ListQuery) (ListPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	page := ListPage{Events: []*Event{}}
	keep := func(ev *Event) bool {
		return (q.Hook == "" || ev.Hook == q.Hook) && (q.Status == "" || ev.Status == q.Status) && (q.ID == "" || ev.ID == q.ID)
	}
	// add reports false once the page is full (and sets Next).
	add := func(ev *Event) bool {
		if len(page.Events) == q.Limit {
			page.Next = page.Events[q.Limit-1].Key
			return false
		}
		ev.Body = nil
		page.Events = append(page.Events, ev)
		return true
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		if q.ID != "" {
			var keys []string
			prefix := idHook(q.ID, q.Hook)
			c := tx.Bucket(bucketByID).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if len(k) >= 16 {
					keys = append(keys, string(k[len(k)-16:]))
				}
			}
			slices.Sort(keys)
			slices.Reverse(keys)
			for _, key := range keys {
				if q.Cursor != "" && key >= q.Cursor {
					continue
				}
				ev, err := b.get(tx, key)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if keep(ev) && !add(ev) {
					return nil
				}
			}
			return nil
		}
		c := tx.Bucket(bucketEvents).Cursor()
		var k, v []byte
		if q.Cursor != "" {
			k, v = c.Seek([]byte(q.Cursor))
			if k == nil {
				k, v = c.Last()
			}
			if k != nil && string(k) >= q.Cursor {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Last()
		}
		for ; k != nil; k, v = c.Prev() {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if keep(&ev) && !add(&ev) {
				return nil
			}
		}
		return nil
	})
	return page, err
}

// Purge removes delivered and dead records last changed before the given
// time (found through their index, without a scan of the others) and
// expired deduplication marks.
func (b *Bolt) Purge(ctx context.Context, before time.Time) (int, error) {
	limit := unixBytes(before)
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n := 0
		// bounded transactions, so enqueues are not held up behind a long purge
		err := b.db.Update(func(tx *bolt.Tx) error {
			n = 0
			done := tx.Bucket(bucketDone)
			var keys [][]byte
			c := done.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < 1000 && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := done.Delete(k); err != nil {
					return err
				}
				ev, err := b.get(tx, string(k[8:]))
				if errors.Is(err, ErrNotFound) || err == nil && !final(ev.Status) {
					continue // stale index entry
				}
				if err != nil {
					return err
				}
				if err := b.count(tx, ev.Hook, ev.Status, ""); err != nil {
					return err
				}
				for _, del := range []struct {
					bucket, key []byte
				}{{bucketEvents, []byte(ev.Key)}, {bucketBodies, []byte(ev.Key)}, {bucketByID, byIDKey(ev)}} {
					if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
						return err
					}
				}
				n++
			}
			return nil
		})
		if err != nil {
			return removed, unavailable(err)
		}
		removed += n
		if n == 0 {
			break
		}
	}
	now := b.now().UnixNano()
	err := b.db.Update(func(tx *bolt.Tx) error {
		dd := tx.Bucket(bucketDedup)
		var expired [][]byte
		err := dd.ForEach(func(k, v []byte) error {
			if len(v) != 8 || readInt(v) <= now {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := dd.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, unavailable(err)
}

// Stats reads the counts kept by every transition, so it costs no scan.
func (b *Bolt) Stats(_ context.Context) (Stats, error) {
	st := Stats{Counts: map[string]map[Status]int{}}
	now := b.now()
	err := b.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketDue).Cursor().First(); k != nil {
			if at := time.Unix(0, readInt(k[:8])); at.Before(now) {
				st.OldestDue = now.Sub(at)
			}
		}
		return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			n, w := binary.Uvarint(k)
			if w <= 0 || uint64(len(k)-w) < n || len(v) != 8 {
				return nil
			}
			hook, status := string(k[w:w+int(n)]), Status(k[w+int(n):])
			if st.Counts[hook] == nil {
				st.Counts[hook] = map[Status]int{}
			}
			st.Counts[hook][status] = int(readInt(v))
			return nil
		})
	})
	return st, err
}

var _ Store = (*Bolt)(nil)
