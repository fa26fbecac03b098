package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/queue"
)

// countByListing counts events by hook and status the slow way.
func countByListing(t *testing.T, s queue.Store) map[string]map[queue.Status]int {
	t.Helper()
	out := map[string]map[queue.Status]int{}
	q := queue.ListQuery{Limit: 100}
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
		}
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
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
		if want := countByListing(t, s); !sameCounts(st.Counts, want) {
			t.Fatalf("%s: stats %v, listing %v", when, st.Counts, want)
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
	s, err := queue.OpenPebble(t.TempDir(), queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
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
