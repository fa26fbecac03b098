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
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned by OpenBolt when another process holds the file.
var ErrLocked = errors.New("event store locked by another process")

var (
	bucketEvents   = []byte("events")   // hook \x00 id -> JSON Event without its payload
	bucketPayloads = []byte("payloads") // hook \x00 id -> payload bytes, written once per enqueue
	bucketDue      = []byte("due")      // dueAt (8 bytes, big-endian unix nanos) hook \x00 id -> nothing
	bucketDedup    = []byte("dedup")    // hook \x00 id -> expiry (8 bytes)
	bucketCounts   = []byte("counts")   // hook \x00 status -> count (8 bytes), rebuilt at open
	bucketDone     = []byte("done")     // updatedAt (8 bytes) hook \x00 id of delivered and dead events -> nothing
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
// concurrent enqueues grouped into one commit (db.Batch).
type Bolt struct {
	db  *bolt.DB
	now func() time.Time
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
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s is in use by another process, probably a Caddy running this config: "+
			"one process at a time can open it (so `caddy validate` of a running config cannot either; "+
			"use `caddy adapt` to check the syntax, or point the store at another path): %w", path, ErrLocked)
	}
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
		for _, name := range [][]byte{bucketEvents, bucketPayloads, bucketDue, bucketDedup, bucketCounts, bucketDone} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return b.recover(tx)
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	return b, nil
}

// recover makes every leased event due now (its worker is gone) and
// rebuilds the counts by hook and status.
func (b *Bolt) recover(tx *bolt.Tx) error {
	now := b.now()
	events := tx.Bucket(bucketEvents)
	if err := tx.DeleteBucket(bucketCounts); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketCounts); err != nil {
		return err
	}
	var leased []*Event
	err := events.ForEach(func(k, v []byte) error {
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

// count moves one event of hook from one status to another in the counts;
// an empty status is none (a new event).
func (b *Bolt) count(tx *bolt.Tx, hook string, from, to Status) error {
	if from == to {
		return nil
	}
	counts := tx.Bucket(bucketCounts)
	add := func(st Status, d int64) error {
		if st == "" {
			return nil
		}
		k := eventKey(hook, string(st))
		var n int64
		if v := counts.Get(k); len(v) == 8 {
			n = readInt(v)
		}
		n += d
		if n <= 0 {
			return counts.Delete(k)
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(n))
		return counts.Put(k, v)
	}
	if err := add(from, -1); err != nil {
		return err
	}
	return add(to, 1)
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

func eventKey(hook, id string) []byte {
	k := make([]byte, 0, len(hook)+1+len(id))
	k = append(k, hook...)
	k = append(k, 0)
	return append(k, id...)
}

func dueKey(at time.Time, hook, id string) []byte {
	k := make([]byte, 8, 8+len(hook)+1+len(id))
	binary.BigEndian.PutUint64(k, uint64(max(at.UnixNano(), 0)))
	return append(k, eventKey(hook, id)...)
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrDuplicate) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotReplayable) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Enqueue stores ev durably; concurrent calls share one commit and fsync.
func (b *Bolt) Enqueue(ctx context.Context, ev *Event, dedupWindow time.Duration) error {
	if ev.ID == "" || ev.Hook == "" || strings.ContainsRune(ev.Hook, 0) {
		return errors.New("event needs an id and a hook")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := b.now()
	rec := *ev
	rec.Status, rec.CreatedAt, rec.UpdatedAt, rec.DueAt, rec.Attempts = StatusQueued, now, now, now, nil
	rec.Payload = nil
	val, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	key := eventKey(ev.Hook, ev.ID)
	err = b.db.Batch(func(tx *bolt.Tx) error {
		if dedupWindow > 0 {
			dd := tx.Bucket(bucketDedup)
			if v := dd.Get(key); len(v) == 8 && readInt(v) > now.UnixNano() {
				return ErrDuplicate
			}
			exp := make([]byte, 8)
			binary.BigEndian.PutUint64(exp, uint64(now.Add(dedupWindow).UnixNano()))
			if err := dd.Put(key, exp); err != nil {
				return err
			}
		}
		events := tx.Bucket(bucketEvents)
		var was Status
		if old := events.Get(key); old != nil {
			// The same id again without dedup: deliver it again.
			var prev Event
			if err := json.Unmarshal(old, &prev); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDue).Delete(dueKey(prev.DueAt, prev.Hook, prev.ID)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDone).Delete(dueKey(prev.UpdatedAt, prev.Hook, prev.ID)); err != nil {
				return err
			}
			was = prev.Status
		}
		if err := b.count(tx, ev.Hook, was, StatusQueued); err != nil {
			return err
		}
		if err := events.Put(key, val); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPayloads).Put(key, ev.Payload); err != nil {
			return err
		}
		return tx.Bucket(bucketDue).Put(dueKey(now, ev.Hook, ev.ID), nil)
	})
	if err == nil {
		ev.Status, ev.CreatedAt, ev.DueAt, ev.UpdatedAt = rec.Status, now, now, now
	}
	return unavailable(err)
}

// Lease marks up to max due events delivering and returns them.
func (b *Bolt) Lease(ctx context.Context, max int, leaseFor time.Duration) ([]*Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := b.now()
	limit := make([]byte, 8)
	binary.BigEndian.PutUint64(limit, uint64(now.UnixNano()))
	var out []*Event
	// Batch: a lease shares its commit with concurrent enqueues and acks.
	err := b.db.Batch(func(tx *bolt.Tx) error {
		out = out[:0]
		due, events := tx.Bucket(bucketDue), tx.Bucket(bucketEvents)
		var keys [][]byte
		c := due.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < max && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := due.Delete(k); err != nil {
				return err
			}
			v := events.Get(k[8:])
			if v == nil {
				continue // stale index entry
			}
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if err := b.count(tx, ev.Hook, ev.Status, StatusDelivering); err != nil {
				return err
			}
			ev.Status, ev.DueAt, ev.UpdatedAt = StatusDelivering, now.Add(leaseFor), now
			if err := b.put(tx, &ev); err != nil {
				return err
			}
			if err := due.Put(dueKey(ev.DueAt, ev.Hook, ev.ID), nil); err != nil {
				return err
			}
			ev.Payload = bytes.Clone(tx.Bucket(bucketPayloads).Get(k[8:]))
			out = append(out, &ev)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// put writes the record of ev; its payload is stored once, at enqueue.
func (b *Bolt) put(tx *bolt.Tx, ev *Event) error {
	rec := *ev
	rec.Payload = nil
	v, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketEvents).Put(eventKey(ev.Hook, ev.ID), v)
}

func (b *Bolt) get(tx *bolt.Tx, hook, id string) (*Event, error) {
	v := tx.Bucket(bucketEvents).Get(eventKey(hook, id))
	if v == nil {
		return nil, ErrNotFound
	}
	var ev Event
	if err := json.Unmarshal(v, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// reschedule moves ev to status, due at due (no due entry for final
// statuses).
func (b *Bolt) reschedule(tx *bolt.Tx, ev *Event, status Status, due time.Time) error {
	dueB := tx.Bucket(bucketDue)
	if err := dueB.Delete(dueKey(ev.DueAt, ev.Hook, ev.ID)); err != nil {
		return err
	}
	if err := b.count(tx, ev.Hook, ev.Status, status); err != nil {
		return err
	}
	done := tx.Bucket(bucketDone)
	if final(ev.Status) {
		if err := done.Delete(dueKey(ev.UpdatedAt, ev.Hook, ev.ID)); err != nil {
			return err
		}
	}
	ev.Status, ev.UpdatedAt = status, b.now()
	if final(status) {
		if err := done.Put(dueKey(ev.UpdatedAt, ev.Hook, ev.ID), nil); err != nil {
			return err
		}
	}
	if status == StatusQueued || status == StatusDelivering {
		ev.DueAt = due
		if err := dueB.Put(dueKey(due, ev.Hook, ev.ID), nil); err != nil {
			return err
		}
	}
	return b.put(tx, ev)
}

func (b *Bolt) finish(hook, id string, a Attempt, status Status, after time.Duration) error {
	err := b.db.Batch(func(tx *bolt.Tx) error {
		ev, err := b.get(tx, hook, id)
		if err != nil {
			return err
		}
		ev.Attempts = append(ev.Attempts, a)
		return b.reschedule(tx, ev, status, b.now().Add(after))
	})
	return unavailable(err)
}

// Ack records a delivered event.
func (b *Bolt) Ack(_ context.Context, hook, id string, a Attempt) error {
	return b.finish(hook, id, a, StatusDelivered, 0)
}

// Retry queues the event again after the delay.
func (b *Bolt) Retry(_ context.Context, hook, id string, a Attempt, after time.Duration) error {
	return b.finish(hook, id, a, StatusQueued, after)
}

// Release gives a leased event back, due now, without an attempt.
func (b *Bolt) Release(_ context.Context, hook, id string) error {
	err := b.db.Batch(func(tx *bolt.Tx) error {
		ev, err := b.get(tx, hook, id)
		if err != nil || ev.Status != StatusDelivering {
			return err
		}
		return b.reschedule(tx, ev, StatusQueued, b.now())
	})
	return unavailable(err)
}

// Dead records the event as dead.
func (b *Bolt) Dead(_ context.Context, hook, id string, a Attempt) error {
	return b.finish(hook, id, a, StatusDead, 0)
}

// Get returns one event.
func (b *Bolt) Get(_ context.Context, hook, id string) (*Event, error) {
	var ev *Event
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		if ev, err = b.get(tx, hook, id); err != nil {
			return err
		}
		ev.Payload = bytes.Clone(tx.Bucket(bucketPayloads).Get(eventKey(hook, id)))
		return nil
	})
	return ev, err
}

// Replay queues a delivered or dead event again, due now.
func (b *Bolt) Replay(_ context.Context, hook, id string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		ev, err := b.get(tx, hook, id)
		if err != nil {
			return err
		}
		if ev.Status != StatusDelivered && ev.Status != StatusDead {
			return ErrNotReplayable
		}
		return b.reschedule(tx, ev, StatusQueued, b.now())
	})
	return unavailable(err)
}

// List pages through events in key order (hook, then id), filtered.
func (b *Bolt) List(_ context.Context, q ListQuery) (ListPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	var page ListPage
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		prefix := []byte(nil)
		if q.Hook != "" {
			prefix = append([]byte(q.Hook), 0)
		}
		var k, v []byte
		switch {
		case q.Cursor != "":
			k, v = c.Seek([]byte(q.Cursor))
			if k != nil && string(k) == q.Cursor {
				k, v = c.Next()
			}
		case prefix != nil:
			k, v = c.Seek(prefix)
		default:
			k, v = c.First()
		}
		for ; k != nil; k, v = c.Next() {
			if prefix != nil && !bytes.HasPrefix(k, prefix) {
				break
			}
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if q.Status != "" && ev.Status != q.Status {
				continue
			}
			if len(page.Events) == q.Limit {
				page.Next = string(eventKey(page.Events[q.Limit-1].Hook, page.Events[q.Limit-1].ID))
				return nil
			}
			ev.Payload = nil
			page.Events = append(page.Events, &ev)
		}
		return nil
	})
	return page, err
}

// readInt reads the 8-byte big-endian numbers this store writes: times in
// unix nanoseconds (clamped at 0) and positive counts, so they fit int64.
func readInt(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b)) //nolint:gosec // written from non-negative int64 values, see above
}

func final(s Status) bool { return s == StatusDelivered || s == StatusDead }

// Purge removes delivered and dead events last changed before the given
// time (found through their index, without a scan of the others) and
// expired deduplication marks.
func (b *Bolt) Purge(ctx context.Context, before time.Time) (int, error) {
	limit := make([]byte, 8)
	binary.BigEndian.PutUint64(limit, uint64(max(before.UnixNano(), 0)))
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n := 0
		// bounded transactions, so enqueues are not held up behind a long purge
		err := b.db.Update(func(tx *bolt.Tx) error {
			n = 0
			done, events := tx.Bucket(bucketDone), tx.Bucket(bucketEvents)
			var keys [][]byte
			c := done.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < 1000 && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := done.Delete(k); err != nil {
					return err
				}
				key := k[8:]
				v := events.Get(key)
				if v == nil {
					continue
				}
				var ev Event
				if err := json.Unmarshal(v, &ev); err != nil {
					return err
				}
				if !final(ev.Status) {
					continue // stale index entry
				}
				if err := b.count(tx, ev.Hook, ev.Status, ""); err != nil {
					return err
				}
				if err := events.Delete(key); err != nil {
					return err
				}
				if err := tx.Bucket(bucketPayloads).Delete(key); err != nil {
					return err
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
	now := uint64(max(b.now().UnixNano(), 0))
	err := b.db.Update(func(tx *bolt.Tx) error {
		dd := tx.Bucket(bucketDedup)
		var expired [][]byte
		err := dd.ForEach(func(k, v []byte) error {
			if len(v) != 8 || binary.BigEndian.Uint64(v) <= now {
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
			hook, status, ok := bytes.Cut(k, []byte{0})
			if !ok || len(v) != 8 {
				return nil
			}
			if st.Counts[string(hook)] == nil {
				st.Counts[string(hook)] = map[Status]int{}
			}
			st.Counts[string(hook)][Status(status)] = int(readInt(v))
			return nil
		})
	})
	return st, err
}

var _ Store = (*Bolt)(nil)
