package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
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

func TestBoltCountsFollowTransitions(t *testing.T) {
	testCountsFollowTransitions(t, func(clock *fakeClock, path string) (queue.Store, error) {
		return queue.OpenBolt(filepath.Join(path, "events.db"), queue.BoltOptions{Now: clock.Now})
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
