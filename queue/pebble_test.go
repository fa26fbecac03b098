package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/queue"
)

// countByListing counts events by hook and status the slow way: pages of
// every record, or of each status when byStatus is set (checking that each
// page is newest first and holds only that status).
func countByListing(t *testing.T, s queue.Store, byStatus bool) map[string]map[queue.Status]int {
	t.Helper()
	out := map[string]map[queue.Status]int{}
	queries := []queue.ListQuery{{Limit: 7}}
	if byStatus {
		queries = nil
		for _, st := range []queue.Status{queue.StatusQueued, queue.StatusDelivering, queue.StatusDelivered, queue.StatusDead} {
			queries = append(queries, queue.ListQuery{Status: st, Limit: 7})
		}
	}
	for _, q := range queries {
		last := ""
		for {
			page, err := s.List(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				if out[ev.Hook] == nil {
					out[ev.Hook] = map[queue.Status]int{}
				}
				out[ev.Hook][ev.Status]++
				if q.Status != "" && ev.Status != q.Status || last != "" && ev.Key >= last {
					t.Fatalf("listing %+v: %s (%s) after %s", q, ev.Key, ev.Status, last)
				}
				last = ev.Key
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
	}
	return out
}

func sameCounts(a, b map[string]map[queue.Status]int) bool {
	if len(a) != len(b) {
		return false
	}
	for hook, m := range a {
		if len(m) != len(b[hook]) {
			return false
		}
		for st, n := range m {
			if b[hook][st] != n {
				return false
			}
		}
	}
	return true
}

func TestPebbleCountsFollowTransitions(t *testing.T) {
	testCountsFollowTransitions(t, func(clock *fakeClock, dir string) (queue.Store, error) {
		return queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	})
}

// testCountsFollowTransitions: Stats reads counts kept by each
// transition; after a random history, a restart (leased records due
// again) and re-sent ids, they equal a full listing.
func testCountsFollowTransitions(t *testing.T, open func(clock *fakeClock, dir string) (queue.Store, error)) {
	ctx := context.Background()
	path := t.TempDir()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	s, err := open(clock, path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(when string) {
		t.Helper()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := countByListing(t, s, false); !sameCounts(st.Counts, want) {
			t.Fatalf("%s: stats %v, listing %v", when, st.Counts, want)
		}
		if want := countByListing(t, s, true); !sameCounts(st.Counts, want) {
			t.Fatalf("%s: stats %v, listing by status %v", when, st.Counts, want)
		}
	}
	for round := range 40 {
		for range 5 {
			hook := []string{"pets", "orders"}[rng.IntN(2)]
			evs := []*queue.Event{newEvent(hook, fmt.Sprintf("e%d", rng.IntN(60)))}
			if rng.IntN(3) == 0 {
				evs = append(evs, newEvent(hook, evs[0].ID))
			}
			opts := queue.EnqueueOptions{}
			if rng.IntN(2) == 0 {
				opts.Dedup = time.Minute
			}
			if rng.IntN(3) == 0 {
				opts.LeaseFor = 30 * time.Second
			}
			if err := s.Enqueue(ctx, evs, opts); err != nil && !errors.Is(err, queue.ErrDuplicate) {
				t.Fatal(err)
			}
		}
		evs, err := s.Lease(ctx, 4, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			a := queue.Attempt{At: clock.Now(), Status: 500}
			l := queue.LeaseOf(ev)
			switch rng.IntN(6) {
			case 0:
				err = s.Ack(ctx, l, queue.Attempt{At: clock.Now(), Status: 200})
			case 1:
				err = s.Retry(ctx, l, a, time.Second)
			case 2:
				err = s.Dead(ctx, l, a)
			case 3:
				err = s.Defer(ctx, l, 5*time.Second)
			case 4:
				err = s.Release(ctx, l)
			default: // left leased
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if round%7 == 0 {
			page, _ := s.List(ctx, queue.ListQuery{Status: queue.StatusDead, Limit: 2})
			for _, ev := range page.Events {
				if err := s.Replay(ctx, ev.Key); err != nil {
					t.Fatal(err)
				}
			}
		}
		clock.Advance(10 * time.Second)
		check(fmt.Sprintf("round %d", round))
		if round%10 == 9 {
			if _, err := s.Purge(ctx, clock.Now().Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("purge after round %d", round))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = open(clock, path); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	check("after restart")
	st, _ := s.Stats(ctx)
	for hook, m := range st.Counts {
		if m[queue.StatusDelivering] != 0 {
			t.Errorf("%s: %d events still delivering after restart", hook, m[queue.StatusDelivering])
		}
	}
}

func openPebble(t *testing.T, clock *fakeClock) queue.Store {
	return openPebbleAt(t, clock, t.TempDir())
}

// openPebbleAt opens the store in dir, closed at the end of the test
// unless reopen closed it first.
func openPebbleAt(t *testing.T, clock *fakeClock, dir string) queue.Store {
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	closeOnce := sync.OnceValue(s.Close)
	t.Cleanup(func() { _ = closeOnce() })
	reopeners.Store(queue.Store(s), func(t *testing.T) queue.Store {
		if err := closeOnce(); err != nil {
			t.Fatalf("close: %v", err)
		}
		return openPebbleAt(t, clock, dir)
	})
	return s
}

func TestPebbleConformance(t *testing.T) {
	runConformance(t, openPebble, true)
}

func TestPebbleRestart(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 3 {
		keys = append(keys, enqueue(t, s, "h", fmt.Sprint(i), queue.EnqueueOptions{Dedup: time.Hour}).Key)
	}
	leased := leaseN(t, s, 3, time.Hour)
	if err := s.Ack(ctx, queue.LeaseOf(leased[2]), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	handed := &queue.Event{ID: "handed", Hook: "h", Body: []byte(`{}`)}
	if err := s.Enqueue(ctx, []*queue.Event{handed}, queue.EnqueueOptions{LeaseFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// a second opener of the same directory is refused at once, in words
	_, err = queue.OpenPebble(dir, queue.PebbleOptions{})
	if want := "event store " + dir + " is in use by another process"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second open: %v, want %q", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// the clock went back while it was stopped: new keys still sort last
	clock.Advance(-time.Hour)
	s, err = queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	// the two leased when it stopped and the one handed out at enqueue
	evs := leaseN(t, s, 3, time.Hour)
	for _, ev := range evs {
		if ev.Gen <= 1 {
			t.Errorf("%s re-leased after restart with generation %d", ev.Key, ev.Gen)
		}
	}
	if err := s.Ack(ctx, queue.LeaseOf(leased[0]), queue.Attempt{At: clock.Now(), Status: 200}); !errors.Is(err, queue.ErrStaleLease) {
		t.Fatalf("ack with a lease from before the restart: %v", err)
	}
	if err := s.Ack(ctx, queue.LeaseOf(handed), queue.Attempt{At: clock.Now(), Status: 200}); !errors.Is(err, queue.ErrStaleLease) {
		t.Fatalf("ack with a lease handed out at enqueue before the restart: %v", err)
	}
	if err := s.Enqueue(ctx, []*queue.Event{newEvent("h", "0")}, queue.EnqueueOptions{Dedup: time.Hour}); !errors.Is(err, queue.ErrDuplicate) {
		t.Fatalf("dedup across restart: %v", err)
	}
	fresh := enqueue(t, s, "h", "new", queue.EnqueueOptions{})
	if fresh.Key <= handed.Key {
		t.Fatalf("key %s after restart does not sort after %s", fresh.Key, handed.Key)
	}
	if ev := get(t, s, keys[2]); ev.Status != queue.StatusDelivered {
		t.Fatalf("delivered record after restart: %+v", ev)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Counts["h"][queue.StatusDelivering] != 3 || st.Counts["h"][queue.StatusDelivered] != 1 || st.Counts["h"][queue.StatusQueued] != 1 {
		t.Fatalf("stats after restart: %v %+v", err, st.Counts)
	}
}

// TestPebbleDedupMarksPurged: expired marks go at Purge (through their
// expiry index), live ones stay, and a mark renewed after its window is
// not removed by the purge of its old expiry.
func TestPebbleDedupMarksPurged(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	s := openPebble(t, clock)
	short, long := queue.EnqueueOptions{Dedup: time.Minute}, queue.EnqueueOptions{Dedup: time.Hour}
	enqueue(t, s, "h", "short", short)
	enqueue(t, s, "h", "renewed", short)
	enqueue(t, s, "h", "long", long)
	clock.Advance(2 * time.Minute)
	enqueue(t, s, "h", "renewed", long) // its first mark expired
	if _, err := s.Purge(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	for id, dup := range map[string]bool{"short": false, "renewed": true, "long": true} {
		err := s.Enqueue(ctx, []*queue.Event{newEvent("h", id)}, queue.EnqueueOptions{Dedup: time.Hour})
		if dup && !errors.Is(err, queue.ErrDuplicate) || !dup && err != nil {
			t.Errorf("%s after purge: %v (duplicate expected: %v)", id, err, dup)
		}
	}
}

// TestPebbleLargeStore: with 100k records stored (most of them finished,
// a backlog not yet due), leasing, enqueueing and listing by id still
// find what they should.
func TestPebbleLargeStore(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 100k records")
	}
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	s := openPebble(t, clock)
	const total, batch = 100_000, 500
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < total/batch; i += 8 {
				evs := make([]*queue.Event, batch)
				for j := range evs {
					evs[j] = &queue.Event{ID: fmt.Sprintf("bulk-%d", i), Hook: "bulk", Action: j, Body: []byte(`{"a":1}`)}
				}
				if err := s.Enqueue(ctx, evs, queue.EnqueueOptions{Dedup: time.Hour}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// finish 90% of them; the rest is retried an hour later
	for done := 0; done < total; {
		evs, err := s.Lease(ctx, 1000, time.Minute)
		if err != nil || len(evs) == 0 {
			t.Fatalf("lease after %d: %v %d", done, err, len(evs))
		}
		for _, ev := range evs {
			l := queue.LeaseOf(ev)
			if done%10 == 0 {
				err = s.Retry(ctx, l, queue.Attempt{At: clock.Now(), Status: 503}, time.Hour)
			} else {
				err = s.Ack(ctx, l, queue.Attempt{At: clock.Now(), Status: 200})
			}
			if err != nil {
				t.Fatal(err)
			}
			done++
		}
	}
	leaseN(t, s, 0, time.Minute)
	fresh := enqueue(t, s, "pets", "fresh", queue.EnqueueOptions{Dedup: time.Hour})
	evs := leaseN(t, s, 1, time.Minute)
	if evs[0].Key != fresh.Key {
		t.Fatalf("leased %+v, want the fresh record", evs[0])
	}
	if err := s.Ack(ctx, queue.LeaseOf(evs[0]), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, []*queue.Event{newEvent("bulk", "bulk-7")}, queue.EnqueueOptions{Dedup: time.Hour}); !errors.Is(err, queue.ErrDuplicate) {
		t.Fatalf("dedup among 100k: %v", err)
	}
	page, err := s.List(ctx, queue.ListQuery{ID: "bulk-7", Limit: 1000})
	if err != nil || len(page.Events) != batch {
		t.Fatalf("list by id: %v %d", err, len(page.Events))
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Counts["bulk"][queue.StatusDelivered] != total*9/10 || st.Counts["bulk"][queue.StatusQueued] != total/10 {
		t.Fatalf("stats: %v %+v", err, st.Counts)
	}
	clock.Advance(time.Hour + time.Second)
	for _, ev := range leaseN(t, s, 100, time.Minute) {
		if ev.Hook != "bulk" || len(ev.Attempts) != 1 || ev.Attempts[0].Status != 503 {
			t.Fatalf("leased %+v, want the retried backlog", ev)
		}
	}
}

func BenchmarkPebbleEnqueue(b *testing.B) {
	benchEnqueue(b, func(b *testing.B) queue.Store {
		s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func BenchmarkPebbleDrain(b *testing.B) {
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	benchDrain(b, s)
}

// TestPebbleLeaseWhileEnqueueing: leases run while senders enqueue (some
// records written leased with a short lease) and workers retry some with
// no delay; once the senders are done, leasing until nothing is due finds
// every record still to be delivered, none left behind where Lease no
// longer looks.
func TestPebbleLeaseWhileEnqueueing(t *testing.T) {
	ctx := context.Background()
	s, err := queue.OpenPebble(t.TempDir(), queue.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	const senders, each = 16, 200
	var mu sync.Mutex
	delivered := map[string]int{}
	var senderWG, workerWG sync.WaitGroup
	stop := make(chan struct{})
	work := func() bool {
		evs, err := s.Lease(ctx, 16, time.Hour)
		if err != nil {
			t.Error(err)
			return false
		}
		for i, ev := range evs {
			l := queue.LeaseOf(ev)
			if i%4 == 0 && len(ev.Attempts) == 0 {
				err = s.Retry(ctx, l, queue.Attempt{At: time.Now(), Status: 503}, 0)
			} else {
				err = s.Ack(ctx, l, queue.Attempt{At: time.Now(), Status: 200})
				mu.Lock()
				delivered[ev.Key]++
				mu.Unlock()
			}
			if err != nil {
				t.Error(err)
			}
		}
		return len(evs) > 0
	}
	for range 3 {
		workerWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					work()
				}
			}
		})
	}
	for g := range senders {
		senderWG.Go(func() {
			for i := range each {
				opts := queue.EnqueueOptions{}
				if i%5 == 0 {
					opts.LeaseFor = time.Millisecond // expires at once: leased again
				}
				if err := s.Enqueue(ctx, []*queue.Event{newEvent("h", fmt.Sprintf("g%d-%d", g, i))}, opts); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	senderWG.Wait()
	close(stop)
	workerWG.Wait()
	time.Sleep(2 * time.Millisecond) // the last leases written at enqueue expire
	// until two leases in a row find nothing (a retried record is due
	// again at once)
	for empty := 0; empty < 2; {
		if work() {
			empty = 0
		} else {
			empty++
		}
	}
	if len(delivered) != senders*each {
		t.Fatalf("delivered %d records, want %d", len(delivered), senders*each)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Counts["h"][queue.StatusDelivered] != senders*each || len(st.Counts["h"]) != 1 {
		t.Fatalf("stats: %v %+v", err, st.Counts)
	}
}

// recordingLogger keeps the lines Pebble logs.
type recordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordingLogger) add(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *recordingLogger) Infof(format string, args ...any)  { l.add(format, args...) }
func (l *recordingLogger) Errorf(format string, args ...any) { l.add(format, args...) }
func (l *recordingLogger) Fatalf(format string, args ...any) { l.add(format, args...) }

// TestPebbleLogger: Pebble's log lines go to the logger given (a reopened
// store logs how it replays its WAL).
func TestPebbleLogger(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		logger := &recordingLogger{}
		s, err := queue.OpenPebble(dir, queue.PebbleOptions{Logger: logger, CacheSize: 1 << 20, MemTableSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		enqueue(t, s, "h", "x", queue.EnqueueOptions{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		logger.mu.Lock()
		n := len(logger.lines)
		logger.mu.Unlock()
		if n == 0 {
			t.Fatal("nothing logged")
		}
	}
}

// TestPebbleDiskNearlyFull: below MinFreeBytes of free space, accepts are
// refused as unavailable (503, never 202), and delivery goes on.
func TestPebbleDiskNearlyFull(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, "h", "before", queue.EnqueueOptions{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// more free space than any disk has
	s, err = queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now, MinFreeBytes: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	err = s.Enqueue(ctx, []*queue.Event{newEvent("h", "after")}, queue.EnqueueOptions{})
	if !errors.Is(err, queue.ErrUnavailable) || !strings.Contains(err.Error(), "bytes free") {
		t.Fatalf("enqueue on a nearly full disk: %v", err)
	}
	ev := leaseN(t, s, 1, time.Minute)[0]
	if err := s.Ack(ctx, queue.LeaseOf(ev), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
		t.Fatalf("ack on a nearly full disk: %v", err)
	}
}

// BenchmarkPebbleBacklog measures accepts (64 at once) and a drain with a
// backlog already stored: QUEUE_BENCH_BACKLOG records (default 200000; the
// budget is stated for 1000000), queued but due only tomorrow, so the new
// events are due first. Compare with BenchmarkPebbleEnqueue/parallel64
// and BenchmarkPebbleDrain on an empty store. QUEUE_BENCH_SETTLE (a
// duration) waits after the fill: right after a bulk fill of 1M records,
// compactions are still catching up and accepts measured then are several
// times slower than once they are done (a backlog built up over time does
// not have that debt); measured here, 30s was enough.
func BenchmarkPebbleBacklog(b *testing.B) {
	backlog := 200_000
	if v := os.Getenv("QUEUE_BENCH_BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		backlog = n
	}
	var offset atomic.Int64
	offset.Store(int64(24 * time.Hour))
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{Now: now})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	const per = 500
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < backlog/per; i += 8 {
				evs := make([]*queue.Event, per)
				for j := range evs {
					evs[j] = &queue.Event{ID: fmt.Sprintf("old-%d", i), Hook: "h", Action: j, Body: []byte(`{"a":1}`)}
				}
				if err := s.Enqueue(ctx, evs, queue.EnqueueOptions{Dedup: time.Hour}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if d := os.Getenv("QUEUE_BENCH_SETTLE"); d != "" {
		settle, _ := time.ParseDuration(d)
		time.Sleep(settle)
	}
	offset.Store(0)
	body := bytes.Repeat([]byte{'x'}, 1024)
	var n atomic.Int64
	b.Run("enqueue64-dedup", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ev := []*queue.Event{{ID: fmt.Sprint(n.Add(1)), Hook: "h", Body: body}}
				if err := s.Enqueue(ctx, ev, queue.EnqueueOptions{Dedup: 24 * time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("drain", func(b *testing.B) {
		benchDrain(b, s)
	})
}

// Lease starts reading its indexes where it stopped last time; an entry
// written below that point since (here: with the clock set back) is
// still leased, from the due index and from the lease index alike.
func TestPebbleLeaseFindsEntriesBelowWhereItStopped(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	s := openPebble(t, clock)
	lease := func(limit int, leaseFor time.Duration) []string {
		t.Helper()
		evs, err := s.Lease(ctx, limit, leaseFor)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ev := range evs {
			ids = append(ids, ev.ID)
		}
		return ids
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Enqueue(ctx, []*queue.Event{newEvent("h", id)}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := lease(2, time.Hour); len(got) != 2 {
		t.Fatalf("first lease: %v, want 2 events", got)
	}
	if got := lease(10, time.Hour); len(got) != 1 || got[0] != "c" {
		t.Fatalf("second lease: %v, want [c]", got)
	}
	if got := lease(10, time.Hour); len(got) != 0 {
		t.Fatalf("nothing due: leased %v", got)
	}

	// due an hour before everything read so far
	clock.Advance(-time.Hour)
	if err := s.Enqueue(ctx, []*queue.Event{newEvent("h", "early")}, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := lease(10, time.Minute); len(got) != 1 || got[0] != "early" {
		t.Fatalf("after an earlier enqueue: %v, want [early]", got)
	}

	// a lease that expires before the ones read so far
	clock.Advance(2 * time.Minute)
	if got := lease(10, time.Minute); len(got) != 1 || got[0] != "early" {
		t.Fatalf("after its lease expired: %v, want [early] again", got)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts["h"][queue.StatusDelivering] != 4 {
		t.Fatalf("counts %v, want 4 delivering", st.Counts)
	}
}
