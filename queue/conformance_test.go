package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddy-webhooks/gateway/queue"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killDirEnv); dir != "" {
		killWriter(dir) // the process TestPebbleSurvivesKill kills
		return
	}
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock shared by a store and its test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// opener makes a fresh store using the clock.
type opener func(t *testing.T, clock *fakeClock) queue.Store

func newEvent(hook, id string) *queue.Event {
	return &queue.Event{
		ID: id, Hook: hook, Body: []byte(`{"id":"` + id + `"}`),
		Values: map[string]string{"http.request.header.X-Tenant": "acme"},
	}
}

// enqueue stores one record and returns it with its key.
func enqueue(t *testing.T, s queue.Store, hook, id string, opts queue.EnqueueOptions) *queue.Event {
	t.Helper()
	ev := newEvent(hook, id)
	if err := s.Enqueue(context.Background(), []*queue.Event{ev}, opts); err != nil {
		t.Fatalf("enqueue %s/%s: %v", hook, id, err)
	}
	if ev.Key == "" {
		t.Fatalf("enqueue %s/%s set no key", hook, id)
	}
	return ev
}

// leaseN leases and fails unless exactly n records come back.
func leaseN(t *testing.T, s queue.Store, n int, leaseFor time.Duration) []*queue.Event {
	t.Helper()
	evs, err := s.Lease(context.Background(), 100, leaseFor)
	if err != nil || len(evs) != n {
		t.Fatalf("lease: %v, got %d records, want %d: %+v", err, len(evs), n, evs)
	}
	return evs
}

func get(t *testing.T, s queue.Store, key string) *queue.Event {
	t.Helper()
	ev, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return ev
}

// runConformance is the behaviour every Store must have. leaseAtEnqueue
// says whether the store writes records leased when EnqueueOptions.LeaseFor
// asks for it.
func runConformance(t *testing.T, open opener, leaseAtEnqueue bool) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	t.Run("lifecycle", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		received := start.Add(-time.Second)
		ev := newEvent("pets", "e1")
		ev.Action, ev.ReceivedAt = 2, received
		if err := s.Enqueue(ctx, []*queue.Event{ev}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if ev.Key == "" || ev.Status != queue.StatusQueued || ev.Gen != 0 {
			t.Fatalf("enqueued: %+v", ev)
		}
		evs := leaseN(t, s, 1, time.Minute)
		got := evs[0]
		if got.Key != ev.Key || got.ID != "e1" || got.Hook != "pets" || got.Action != 2 || got.Status != queue.StatusDelivering ||
			got.Gen == 0 || string(got.Body) != `{"id":"e1"}` || got.Values["http.request.header.X-Tenant"] != "acme" || !got.ReceivedAt.Equal(received) {
			t.Fatalf("leased %+v", got)
		}
		leaseN(t, s, 0, time.Minute)
		if err := s.Ack(ctx, queue.LeaseOf(got), queue.Attempt{At: clock.Now(), Status: 200, Latency: 3 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		done := get(t, s, ev.Key)
		if done.Status != queue.StatusDelivered || len(done.Attempts) != 1 || done.Attempts[0].Status != 200 ||
			done.Attempts[0].Latency != 3*time.Millisecond || !done.DueAt.IsZero() || string(done.Body) != `{"id":"e1"}` {
			t.Fatalf("after ack: %+v", done)
		}
		clock.Advance(2 * time.Minute)
		leaseN(t, s, 0, time.Minute)
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("missing record: %v", err)
		}
		if err := s.Enqueue(ctx, nil, queue.EnqueueOptions{}); err == nil {
			t.Fatal("enqueue of no record accepted")
		}
		mixed := []*queue.Event{newEvent("pets", "a"), newEvent("pets", "b")}
		if err := s.Enqueue(ctx, mixed, queue.EnqueueOptions{}); err == nil {
			t.Fatal("enqueue of records with different ids accepted")
		}
	})

	t.Run("stale leases are refused", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		ev := enqueue(t, s, "pets", "s1", queue.EnqueueOptions{})
		first := leaseN(t, s, 1, 30*time.Second)[0]
		clock.Advance(31 * time.Second)
		second := leaseN(t, s, 1, 30*time.Second)[0]
		if second.Key != ev.Key || second.Gen <= first.Gen {
			t.Fatalf("re-lease: first %+v, second %+v", first, second)
		}
		old := queue.LeaseOf(first)
		a := queue.Attempt{At: clock.Now(), Status: 500}
		for name, err := range map[string]error{
			"ack":   s.Ack(ctx, old, queue.Attempt{At: clock.Now(), Status: 200}),
			"retry": s.Retry(ctx, old, a, time.Second),
			"dead":  s.Dead(ctx, old, a),
			"defer": s.Defer(ctx, old, time.Second),
		} {
			if !errors.Is(err, queue.ErrStaleLease) {
				t.Errorf("%s with the expired lease: %v, want ErrStaleLease", name, err)
			}
		}
		if err := s.Release(ctx, old); err != nil {
			t.Errorf("release with the expired lease: %v, want nil", err)
		}
		if err := s.Ack(ctx, queue.Lease{Key: "nope", Gen: second.Gen}, a); !errors.Is(err, queue.ErrStaleLease) {
			t.Errorf("ack of an unknown key: %v", err)
		}
		cur := get(t, s, ev.Key)
		if cur.Status != queue.StatusDelivering || cur.Gen != second.Gen || len(cur.Attempts) != 0 || cur.Deferrals != 0 {
			t.Fatalf("the stale outcomes changed the record: %+v", cur)
		}
		leaseN(t, s, 0, time.Minute) // the release did not put it back either
		if err := s.Ack(ctx, queue.LeaseOf(second), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, queue.LeaseOf(second), queue.Attempt{At: clock.Now(), Status: 200}); !errors.Is(err, queue.ErrStaleLease) {
			t.Fatalf("second ack of one lease: %v", err)
		}
		if err := s.Replay(ctx, ev.Key); err != nil {
			t.Fatal(err)
		}
		third := leaseN(t, s, 1, time.Minute)[0]
		if err := s.Dead(ctx, queue.LeaseOf(second), a); !errors.Is(err, queue.ErrStaleLease) {
			t.Fatalf("dead with the lease before the replay: %v", err)
		}
		if cur := get(t, s, ev.Key); cur.Status != queue.StatusDelivering || cur.Gen != third.Gen || len(cur.Attempts) != 1 {
			t.Fatalf("after a refused dead: %+v", cur)
		}
	})

	t.Run("a re-sent id without dedup is a new record", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		v1 := newEvent("orders", "order-1")
		v1.Body = []byte(`{"v":1}`)
		if err := s.Enqueue(ctx, []*queue.Event{v1}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		first := leaseN(t, s, 1, time.Minute)[0]
		clock.Advance(time.Millisecond)
		v2 := newEvent("orders", "order-1")
		v2.Body = []byte(`{"v":2}`)
		if err := s.Enqueue(ctx, []*queue.Event{v2}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if v2.Key == v1.Key {
			t.Fatalf("both records have key %s", v1.Key)
		}
		second := leaseN(t, s, 1, time.Minute)[0]
		if second.Key != v2.Key || string(second.Body) != `{"v":2}` {
			t.Fatalf("second lease: %+v", second)
		}
		for _, ev := range []*queue.Event{first, second} {
			if err := s.Ack(ctx, queue.LeaseOf(ev), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		for key, body := range map[string]string{v1.Key: `{"v":1}`, v2.Key: `{"v":2}`} {
			if ev := get(t, s, key); ev.Status != queue.StatusDelivered || string(ev.Body) != body || len(ev.Attempts) != 1 {
				t.Errorf("%s: %+v", key, ev)
			}
		}
		page, err := s.List(ctx, queue.ListQuery{ID: "order-1"})
		if err != nil || len(page.Events) != 2 || page.Events[0].Key != v2.Key || page.Events[1].Key != v1.Key {
			t.Fatalf("listing by id, newest first: %v %+v", err, page.Events)
		}
	})

	t.Run("dedup is per request, over all its actions", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		batch := func(id string, n int) []*queue.Event {
			evs := make([]*queue.Event, n)
			for i := range evs {
				evs[i] = newEvent("pets", id)
				evs[i].Action = i
			}
			return evs
		}
		opts := queue.EnqueueOptions{Dedup: time.Hour}
		three := batch("m1", 3)
		if err := s.Enqueue(ctx, three, opts); err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, ev := range three {
			keys[ev.Key] = true
		}
		if len(keys) != 3 || keys[""] {
			t.Fatalf("the actions of one request share keys: %v", keys)
		}
		if err := s.Enqueue(ctx, batch("m1", 3), opts); !errors.Is(err, queue.ErrDuplicate) {
			t.Fatalf("same id again: %v", err)
		}
		// "E" with two actions, then the id "E.1": no key collides
		if err := s.Enqueue(ctx, batch("E", 2), opts); err != nil {
			t.Fatal(err)
		}
		if err := s.Enqueue(ctx, batch("E.1", 1), opts); err != nil {
			t.Fatalf("id E.1 after E: %v", err)
		}
		evs := leaseN(t, s, 6, time.Minute)
		actions := map[string][]int{}
		for _, ev := range evs {
			actions[ev.ID] = append(actions[ev.ID], ev.Action)
		}
		slices.Sort(actions["m1"])
		slices.Sort(actions["E"])
		if !slices.Equal(actions["m1"], []int{0, 1, 2}) || !slices.Equal(actions["E"], []int{0, 1}) || !slices.Equal(actions["E.1"], []int{0}) {
			t.Fatalf("leased actions by id: %v", actions)
		}
	})

	t.Run("defer is not an attempt", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		ev := enqueue(t, s, "gone", "d1", queue.EnqueueOptions{})
		first := leaseN(t, s, 1, time.Minute)[0]
		if err := s.Defer(ctx, queue.LeaseOf(first), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		cur := get(t, s, ev.Key)
		if cur.Status != queue.StatusQueued || cur.Deferrals != 1 || len(cur.Attempts) != 0 || !cur.DueAt.Equal(start.Add(10*time.Second)) {
			t.Fatalf("deferred: %+v", cur)
		}
		leaseN(t, s, 0, time.Minute)
		clock.Advance(11 * time.Second)
		again := leaseN(t, s, 1, time.Minute)[0]
		if again.Gen <= first.Gen || again.Deferrals != 1 || len(again.Attempts) != 0 {
			t.Fatalf("after the deferral: %+v", again)
		}
	})

	t.Run("enqueue leased", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		evs := []*queue.Event{newEvent("pets", "l1"), newEvent("pets", "l1")}
		evs[1].Action = 1
		if err := s.Enqueue(ctx, evs, queue.EnqueueOptions{LeaseFor: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if !leaseAtEnqueue {
			for _, ev := range evs {
				if ev.Status != queue.StatusQueued {
					t.Fatalf("store without leases at enqueue: %+v", ev)
				}
			}
			leaseN(t, s, 2, time.Minute)
			return
		}
		for _, ev := range evs {
			if ev.Status != queue.StatusDelivering || ev.Gen == 0 || !ev.DueAt.Equal(start.Add(time.Minute)) {
				t.Fatalf("enqueued leased: %+v", ev)
			}
			if cur := get(t, s, ev.Key); cur.Status != queue.StatusDelivering || cur.Gen != ev.Gen {
				t.Fatalf("stored: %+v", cur)
			}
		}
		leaseN(t, s, 0, time.Minute)
		if err := s.Ack(ctx, queue.LeaseOf(evs[0]), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(61 * time.Second)
		again := leaseN(t, s, 1, time.Minute)[0]
		if again.Key != evs[1].Key || again.Gen <= evs[1].Gen {
			t.Fatalf("expired lease of enqueue: %+v", again)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Counts["pets"][queue.StatusDelivered] != 1 || st.Counts["pets"][queue.StatusDelivering] != 1 {
			t.Fatalf("stats: %v %+v", err, st.Counts)
		}
	})

	t.Run("purge", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		keys := map[string]string{}
		for _, id := range []string{"p-delivered", "p-dead", "p-queued", "p-replayed", "p-recent"} {
			keys[id] = enqueue(t, s, "purge", id, queue.EnqueueOptions{}).Key
		}
		leases := map[string]queue.Lease{}
		for _, ev := range leaseN(t, s, 5, time.Hour) {
			leases[ev.ID] = queue.LeaseOf(ev)
		}
		at := queue.Attempt{At: clock.Now(), Status: 200}
		for _, step := range []error{
			s.Ack(ctx, leases["p-delivered"], at),
			s.Dead(ctx, leases["p-dead"], queue.Attempt{At: clock.Now(), Status: 400}),
			s.Retry(ctx, leases["p-queued"], queue.Attempt{At: clock.Now(), Status: 503}, 10*time.Hour),
			s.Ack(ctx, leases["p-replayed"], at),
		} {
			if step != nil {
				t.Fatal(step)
			}
		}
		if ev := get(t, s, keys["p-dead"]); ev.Status != queue.StatusDead || !ev.DueAt.IsZero() {
			t.Fatalf("dead: %+v", ev)
		}
		clock.Advance(2 * time.Hour)
		if err := s.Replay(ctx, keys["p-replayed"]); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, leases["p-recent"], at); err != nil {
			t.Fatal(err)
		}
		n, err := s.Purge(ctx, clock.Now().Add(-time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("purge removed %d (%v), want the delivered and the dead record", n, err)
		}
		for id, want := range map[string]bool{"p-delivered": false, "p-dead": false, "p-queued": true, "p-replayed": true, "p-recent": true} {
			_, err := s.Get(ctx, keys[id])
			if want && err != nil || !want && !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("%s after purge: %v", id, err)
			}
		}
		if page, err := s.List(ctx, queue.ListQuery{ID: "p-dead"}); err != nil || len(page.Events) != 0 {
			t.Errorf("a purged record is still listed: %v %+v", err, page.Events)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Counts["purge"][queue.StatusDelivered] != 1 || st.Counts["purge"][queue.StatusDead] != 0 || st.Counts["purge"][queue.StatusQueued] != 2 {
			t.Errorf("stats after purge: %v %+v", err, st.Counts["purge"])
		}
		// the same id can be accepted again with dedup
		enqueue(t, s, "purge", "p-delivered", queue.EnqueueOptions{Dedup: time.Hour})
	})

	t.Run("release", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		ev := enqueue(t, s, "pets", "r1", queue.EnqueueOptions{})
		first := leaseN(t, s, 1, time.Hour)[0]
		if err := s.Release(ctx, queue.LeaseOf(first)); err != nil {
			t.Fatal(err)
		}
		again := leaseN(t, s, 1, time.Hour)[0]
		if again.Key != ev.Key || len(again.Attempts) != 0 || again.Deferrals != 0 {
			t.Fatalf("a released record is due at once, with no attempt: %+v", again)
		}
		if err := s.Ack(ctx, queue.LeaseOf(again), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, queue.LeaseOf(again)); err != nil {
			t.Fatal(err)
		}
		if cur := get(t, s, ev.Key); cur.Status != queue.StatusDelivered {
			t.Fatalf("release changed a delivered record: %+v", cur)
		}
	})

	t.Run("retry, dead and replay", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		ev := enqueue(t, s, "pets", "e2", queue.EnqueueOptions{})
		first := leaseN(t, s, 1, time.Minute)[0]
		if err := s.Retry(ctx, queue.LeaseOf(first), queue.Attempt{At: clock.Now(), Status: 503, Error: "upstream answered 503"}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		leaseN(t, s, 0, time.Minute)
		clock.Advance(6 * time.Second)
		second := leaseN(t, s, 1, time.Minute)[0]
		if len(second.Attempts) != 1 || second.Attempts[0].Error != "upstream answered 503" {
			t.Fatalf("retried record: %+v", second)
		}
		if err := s.Dead(ctx, queue.LeaseOf(second), queue.Attempt{At: clock.Now(), Error: "connection refused"}); err != nil {
			t.Fatal(err)
		}
		if cur := get(t, s, ev.Key); cur.Status != queue.StatusDead || len(cur.Attempts) != 2 || !cur.DueAt.IsZero() {
			t.Fatalf("dead: %+v", cur)
		}
		if err := s.Replay(ctx, ev.Key); err != nil {
			t.Fatal(err)
		}
		third := leaseN(t, s, 1, time.Minute)[0]
		if third.Key != ev.Key || len(third.Attempts) != 2 {
			t.Fatalf("replayed record: %+v", third)
		}
		if err := s.Replay(ctx, ev.Key); !errors.Is(err, queue.ErrNotReplayable) {
			t.Fatalf("replay of a delivering record: %v", err)
		}
		if err := s.Replay(ctx, "nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("replay of a missing record: %v", err)
		}
	})

	t.Run("lease expiry makes a record due again", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		ev := enqueue(t, s, "pets", "e3", queue.EnqueueOptions{})
		leaseN(t, s, 1, 30*time.Second)
		clock.Advance(31 * time.Second)
		if again := leaseN(t, s, 1, 30*time.Second)[0]; again.Key != ev.Key {
			t.Fatalf("expired lease not due again: %+v", again)
		}
	})

	t.Run("dedup window", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		opts := queue.EnqueueOptions{Dedup: time.Hour}
		enqueue(t, s, "pets", "d1", opts)
		if err := s.Enqueue(ctx, []*queue.Event{newEvent("pets", "d1")}, opts); !errors.Is(err, queue.ErrDuplicate) {
			t.Fatalf("duplicate within the window: %v", err)
		}
		enqueue(t, s, "orders", "d1", opts) // same id, other hook
		leaseN(t, s, 2, time.Minute)        // the duplicate stored nothing
		clock.Advance(2 * time.Hour)
		enqueue(t, s, "pets", "d1", opts)
	})

	t.Run("lease respects max and due order", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		for i := range 5 {
			enqueue(t, s, "pets", fmt.Sprintf("o%d", i), queue.EnqueueOptions{})
			clock.Advance(time.Millisecond)
		}
		evs, _ := s.Lease(ctx, 3, time.Minute)
		if len(evs) != 3 || evs[0].ID != "o0" || evs[2].ID != "o2" {
			t.Fatalf("lease order: %+v", evs)
		}
	})

	t.Run("list and stats", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		var keys []string
		for i := range 7 {
			keys = append(keys, enqueue(t, s, "pets", fmt.Sprintf("l%02d", i), queue.EnqueueOptions{}).Key)
		}
		clock.Advance(time.Millisecond)
		enqueue(t, s, "orders", "x", queue.EnqueueOptions{})
		evs, _ := s.Lease(ctx, 2, time.Minute)
		for _, ev := range evs {
			if err := s.Ack(ctx, queue.LeaseOf(ev), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		var all []*queue.Event
		q := queue.ListQuery{Hook: "pets", Limit: 3}
		for pages := 0; pages < 10; pages++ {
			page, err := s.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Events...)
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if len(all) != 7 {
			t.Fatalf("paged %d records of pets, want 7", len(all))
		}
		for i, ev := range all {
			if ev.Hook != "pets" || ev.Body != nil || ev.Key != keys[6-i] {
				t.Errorf("listing %d (want newest first, key %s): %+v", i, keys[6-i], ev)
			}
		}
		page, _ := s.List(ctx, queue.ListQuery{Hook: "pets", Status: queue.StatusDelivered})
		if len(page.Events) != 2 {
			t.Fatalf("delivered: %d", len(page.Events))
		}
		page, _ = s.List(ctx, queue.ListQuery{ID: "l03"})
		if len(page.Events) != 1 || page.Events[0].Key != keys[3] || page.Events[0].Body != nil {
			t.Fatalf("by id: %+v", page.Events)
		}
		for _, q := range []queue.ListQuery{{Hook: "nope"}, {ID: "nope"}, {Hook: "orders", ID: "l03"}, {Status: queue.StatusDead}} {
			page, err := s.List(ctx, q)
			if err != nil || page.Events == nil || len(page.Events) != 0 || page.Next != "" {
				t.Errorf("empty listing %+v: %v %#v", q, err, page)
			}
		}
		clock.Advance(time.Minute)
		st, err := s.Stats(ctx)
		if err != nil || st.Counts["pets"][queue.StatusQueued] != 5 || st.Counts["pets"][queue.StatusDelivered] != 2 || st.Counts["orders"][queue.StatusQueued] != 1 || st.OldestDue < time.Minute {
			t.Fatalf("stats %v %+v", err, st)
		}
	})

	t.Run("concurrent enqueues are all durable and leased once", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		var wg sync.WaitGroup
		errs := make(chan error, 64*8)
		for g := range 64 {
			wg.Go(func() {
				for i := range 8 {
					ev := newEvent("load", fmt.Sprintf("g%02d-%d", g, i))
					if err := s.Enqueue(ctx, []*queue.Event{ev}, queue.EnqueueOptions{Dedup: time.Hour}); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for {
			evs, err := s.Lease(ctx, 100, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				if seen[ev.ID] {
					t.Fatalf("%s leased twice", ev.ID)
				}
				seen[ev.ID] = true
			}
		}
		if len(seen) != 64*8 {
			t.Fatalf("leased %d of %d", len(seen), 64*8)
		}
	})

	runLogConformance(t, open)
}

// reopeners holds, by store, how to close it and open it again on the
// same data (registered by the openers of the conformance suite).
var reopeners sync.Map // queue.Store -> func(t *testing.T) queue.Store

// reopen closes s cleanly and opens its data again.
func reopen(t *testing.T, s queue.Store) queue.Store {
	t.Helper()
	f, ok := reopeners.Load(s)
	if !ok {
		t.Fatalf("the opener of %T registered no reopener", s)
	}
	return f.(func(t *testing.T) queue.Store)(t)
}

// logRecord is a finished run-log record with every request field set.
func logRecord(hook, id string, status queue.Status, received time.Time) *queue.Event {
	return &queue.Event{
		ID: id, Hook: hook, Action: -1, Status: status, ReceivedAt: received,
		Mode: "gate", Auth: "github", Inbound: 200, Request: "POST /hooks/" + hook, RemoteIP: "192.0.2.7",
		Headers: map[string][]string{"X-Github-Event": {"push"}, "Authorization": {"[redacted]"}},
		Payload: []byte(`{"ref":"refs/heads/main","id":"` + id + `"}`),
	}
}

func record(t *testing.T, s queue.Store, evs ...*queue.Event) {
	t.Helper()
	if err := s.Record(context.Background(), evs); err != nil {
		t.Fatalf("record: %v", err)
	}
	for _, ev := range evs {
		if ev.Key == "" {
			t.Fatalf("record set no key on %+v", ev)
		}
	}
}

// sameRequest reports how got differs from want in the request fields
// (and, with detail, in headers and payload).
func sameRequest(got, want *queue.Event, detail bool) error {
	if got.Mode != want.Mode || got.Auth != want.Auth || got.Reason != want.Reason || got.Inbound != want.Inbound ||
		got.Request != want.Request || got.RemoteIP != want.RemoteIP || got.Truncated != want.Truncated ||
		got.Action != want.Action || got.ID != want.ID || got.Hook != want.Hook || !got.ReceivedAt.Equal(want.ReceivedAt) {
		return fmt.Errorf("request fields: got %+v, want %+v", got, want)
	}
	if !detail {
		if got.Body != nil || got.Payload != nil || got.Headers != nil {
			return fmt.Errorf("a listing holds body, payload or headers: %+v", got)
		}
		return nil
	}
	if !bytes.Equal(got.Payload, want.Payload) || fmt.Sprint(got.Headers) != fmt.Sprint(want.Headers) || !bytes.Equal(got.Body, want.Body) {
		return fmt.Errorf("detail: got payload %q headers %v body %q, want %q %v %q", got.Payload, got.Headers, got.Body, want.Payload, want.Headers, want.Body)
	}
	return nil
}

// listAll pages through q and returns the keys listed.
func listAll(t *testing.T, s queue.Store, q queue.ListQuery) []string {
	t.Helper()
	var keys []string
	for range 1000 {
		page, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		for _, ev := range page.Events {
			keys = append(keys, ev.Key)
		}
		if page.Next == "" {
			return keys
		}
		q.Cursor = page.Next
	}
	t.Fatalf("list %+v: no end", q)
	return nil
}

func keysOf(evs ...*queue.Event) []string {
	var keys []string
	for _, ev := range evs {
		keys = append(keys, ev.Key)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	return keys
}

// runLogConformance is the run log's part of the suite: records written
// by Record, listings by time and text, trims and counts.
func runLogConformance(t *testing.T, open opener) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	t.Run("headers given encoded are read back as headers", func(t *testing.T) {
		s := open(t, &fakeClock{now: start})
		want := map[string][]string{"X-Github-Event": {"push"}, "Authorization": {"[redacted]"}, "Accept": {"a", "b"}, "X-Empty": {}}
		var block []byte
		for _, name := range []string{"X-Github-Event", "Authorization", "Accept", "X-Empty"} {
			block = queue.AppendHeader(block, name, want[name])
		}
		rec := logRecord("gh", "h1", queue.StatusPassed, start)
		rec.Headers, rec.HeaderBlock = nil, block
		record(t, s, rec)
		async := newEvent("gh", "h2")
		async.HeaderBlock = block
		if err := s.Enqueue(ctx, []*queue.Event{async}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{rec.Key, async.Key} {
			got := get(t, s, key)
			if len(got.Headers) != len(want) || fmt.Sprint(got.Headers) != fmt.Sprint(want) {
				t.Errorf("%s: headers %q, want %q", key, got.Headers, want)
			}
		}
	})

	t.Run("record keeps every field, and survives a reopen", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		received := start.Add(-2 * time.Second)
		rejected := logRecord("gh", "r1", queue.StatusRejected, received)
		rejected.Auth, rejected.Reason, rejected.Inbound = "", "github: signature mismatch", 401
		passed := logRecord("gh", "p1", queue.StatusPassed, received)
		dup := logRecord("gh", "d1", queue.StatusDuplicate, received)
		syncRec := logRecord("gh", "s1", queue.StatusDelivered, received)
		syncRec.Mode, syncRec.Action, syncRec.Body = "sync", 0, []byte(`{"reshaped":true}`)
		syncRec.Attempts = []queue.Attempt{{At: received, Status: 200, Latency: 5 * time.Millisecond}}
		failed := logRecord("gh", "s2", queue.StatusDead, received)
		failed.Mode, failed.Action, failed.Inbound, failed.Truncated = "sync", 1, 502, true
		failed.Attempts = []queue.Attempt{{At: received, Error: "connection refused"}}
		all := []*queue.Event{rejected, passed, dup, syncRec, failed}
		want := make([]queue.Event, len(all))
		for i, ev := range all {
			want[i] = *ev
		}
		record(t, s, all...)
		for i := 1; i < len(all); i++ {
			if all[i].Key <= all[i-1].Key {
				t.Fatalf("keys of one batch not in order: %s then %s", all[i-1].Key, all[i].Key)
			}
		}
		enq := enqueue(t, s, "gh", "a1", queue.EnqueueOptions{})
		if enq.Key <= failed.Key {
			t.Fatalf("an enqueue after a record has an older key: %s <= %s", enq.Key, failed.Key)
		}
		check := func(s queue.Store) {
			t.Helper()
			for i, ev := range all {
				got := get(t, s, ev.Key)
				if err := sameRequest(got, &want[i], true); err != nil {
					t.Errorf("%s: %v", ev.ID, err)
				}
				if got.Status != want[i].Status || len(got.Attempts) != len(want[i].Attempts) || !got.DueAt.IsZero() {
					t.Errorf("%s: %+v", ev.ID, got)
				}
			}
			if got := get(t, s, syncRec.Key); got.Attempts[0].Latency != 5*time.Millisecond || got.Attempts[0].Status != 200 {
				t.Errorf("attempt of the sync record: %+v", got.Attempts)
			}
			page, err := s.List(ctx, queue.ListQuery{Hook: "gh"})
			if err != nil || len(page.Events) != 6 {
				t.Fatalf("list: %v %d", err, len(page.Events))
			}
			for i, ev := range page.Events[1:] { // newest first: the enqueued one, then the records backwards
				if err := sameRequest(ev, &want[len(want)-1-i], false); err != nil {
					t.Errorf("listed %d: %v", i, err)
				}
			}
			st, err := s.Stats(ctx)
			wantCounts := map[queue.Status]int{
				queue.StatusRejected: 1, queue.StatusPassed: 1, queue.StatusDuplicate: 1,
				queue.StatusDelivered: 1, queue.StatusDead: 1, queue.StatusQueued: 1,
			}
			if err != nil || !maps.Equal(st.Counts["gh"], wantCounts) {
				t.Errorf("stats: %v %v", err, st.Counts)
			}
			for _, status := range []queue.Status{queue.StatusRejected, queue.StatusPassed, queue.StatusDuplicate} {
				if keys := listAll(t, s, queue.ListQuery{Status: status}); len(keys) != 1 {
					t.Errorf("listing of %s: %v", status, keys)
				}
			}
		}
		check(s)
		s = reopen(t, s)
		check(s)
		// delivery goes on after the reopen: the enqueued event is due
		if evs := leaseN(t, s, 1, time.Minute); evs[0].Key != enq.Key {
			t.Fatalf("leased %+v", evs[0])
		}
	})

	t.Run("record refuses unfinished statuses", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		for _, status := range []queue.Status{queue.StatusQueued, queue.StatusDelivering, ""} {
			batch := []*queue.Event{logRecord("gh", "ok", queue.StatusPassed, start), logRecord("gh", "bad", status, start)}
			if err := s.Record(ctx, batch); err == nil {
				t.Errorf("record of status %q accepted", status)
			}
		}
		if err := s.Record(ctx, []*queue.Event{logRecord("", "x", queue.StatusRejected, start)}); err == nil {
			t.Error("record without a hook accepted")
		}
		if st, err := s.Stats(ctx); err != nil || len(st.Counts) != 0 {
			t.Fatalf("a refused batch stored records: %v %v", err, st.Counts)
		}
		leaseN(t, s, 0, time.Minute)
	})

	t.Run("fields are kept through every transition", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		ev := logRecord("pets", "t1", "", start.Add(-time.Second))
		ev.Mode, ev.Action, ev.Inbound, ev.Body = "async", 0, 202, []byte(`{"pet":"Rex"}`)
		want := *ev
		if err := s.Enqueue(ctx, []*queue.Event{ev}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		step := func(name string) {
			t.Helper()
			if err := sameRequest(get(t, s, ev.Key), &want, true); err != nil {
				t.Errorf("after %s: %v", name, err)
			}
			page, err := s.List(ctx, queue.ListQuery{ID: "t1"})
			if err != nil || len(page.Events) != 1 {
				t.Fatalf("after %s, list: %v %+v", name, err, page.Events)
			}
			if err := sameRequest(page.Events[0], &want, false); err != nil {
				t.Errorf("after %s, listed: %v", name, err)
			}
		}
		step("enqueue")
		leased := leaseN(t, s, 1, time.Minute)[0]
		if leased.Mode != "async" || leased.Inbound != 202 || leased.Request != want.Request || leased.Auth != "github" || string(leased.Body) != `{"pet":"Rex"}` {
			t.Errorf("leased: %+v", leased)
		}
		step("lease")
		if err := s.Retry(ctx, queue.LeaseOf(leased), queue.Attempt{At: clock.Now(), Status: 503}, time.Second); err != nil {
			t.Fatal(err)
		}
		step("retry")
		clock.Advance(2 * time.Second)
		leased = leaseN(t, s, 1, time.Minute)[0]
		if err := s.Dead(ctx, queue.LeaseOf(leased), queue.Attempt{At: clock.Now(), Status: 500}); err != nil {
			t.Fatal(err)
		}
		step("dead")
		if err := s.Replay(ctx, ev.Key); err != nil {
			t.Fatal(err)
		}
		step("replay")
		leased = leaseN(t, s, 1, time.Minute)[0]
		if err := s.Ack(ctx, queue.LeaseOf(leased), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		step("ack")
		if got := get(t, s, ev.Key); got.Status != queue.StatusDelivered || len(got.Attempts) != 3 {
			t.Fatalf("at the end: %+v", got)
		}
	})

	t.Run("replay refuses records without an action or cut short", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		refused := map[string]*queue.Event{
			"rejected":  logRecord("gh", "r", queue.StatusRejected, start),
			"passed":    logRecord("gh", "p", queue.StatusPassed, start),
			"duplicate": logRecord("gh", "d", queue.StatusDuplicate, start),
			"no action": logRecord("gh", "n", queue.StatusDead, start),
			"truncated": logRecord("gh", "t", queue.StatusDead, start),
			"no body":   logRecord("gh", "b", queue.StatusDelivered, start),
		}
		refused["rejected"].Action, refused["duplicate"].Action = 0, 0 // refused by status alone
		refused["truncated"].Action, refused["truncated"].Truncated = 0, true
		refused["no body"].Mode, refused["no body"].Action = "sync", 0 // recorded with log meta
		replayable := logRecord("gh", "ok", queue.StatusDead, start)
		replayable.Mode, replayable.Action, replayable.Body = "sync", 1, []byte(`{"sent":1}`)
		evs := []*queue.Event{replayable}
		for _, ev := range refused {
			evs = append(evs, ev)
		}
		record(t, s, evs...)
		for name, ev := range refused {
			if queue.Replayable(get(t, s, ev.Key)) {
				t.Errorf("%s is said to be replayable", name)
			}
			if err := s.Replay(ctx, ev.Key); !errors.Is(err, queue.ErrNotReplayable) {
				t.Errorf("replay of %s: %v, want ErrNotReplayable", name, err)
			}
			if got := get(t, s, ev.Key); got.Status != ev.Status {
				t.Errorf("a refused replay changed %s: %+v", name, got)
			}
		}
		leaseN(t, s, 0, time.Minute)
		if !queue.Replayable(get(t, s, replayable.Key)) {
			t.Error("a failed sync record with its body is said not to be replayable")
		}
		if err := s.Replay(ctx, replayable.Key); err != nil {
			t.Fatalf("replay of a failed sync record: %v", err)
		}
		got := leaseN(t, s, 1, time.Minute)[0]
		if got.Key != replayable.Key || got.Action != 1 || string(got.Body) != `{"sent":1}` || got.Mode != "sync" {
			t.Fatalf("leased after replay: %+v", got)
		}
		if err := s.Ack(ctx, queue.LeaseOf(got), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, replayable.Key); got.Status != queue.StatusDelivered || len(got.Attempts) != 1 {
			t.Fatalf("after the replayed delivery: %+v", got)
		}
		// a sync record with an empty body, and an async event without one,
		// replay
		emptySync := logRecord("gh", "e", queue.StatusDead, start)
		emptySync.Mode, emptySync.Action, emptySync.Body = "sync", 0, []byte{}
		record(t, s, emptySync)
		async := &queue.Event{ID: "a", Hook: "gh"}
		if err := s.Enqueue(ctx, []*queue.Event{async}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		leased := leaseN(t, s, 1, time.Minute)[0]
		if err := s.Dead(ctx, queue.LeaseOf(leased), queue.Attempt{At: clock.Now(), Status: 400}); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{emptySync.Key, async.Key} {
			if ev := get(t, s, key); !queue.Replayable(ev) || len(ev.Body) != 0 {
				t.Errorf("%s with an empty body: %+v", ev.ID, ev)
			}
			if err := s.Replay(ctx, key); err != nil {
				t.Errorf("replay of %s: %v", key, err)
			}
		}
		leaseN(t, s, 2, time.Minute)
	})

	t.Run("list by time range and text", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		at := func(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }
		// written at 10:00 but received over the hour before (a sync request
		// recorded when its long upstream call ended), and one received
		// "after" its write (another clock)
		r50 := logRecord("gh", "Delivery-50", queue.StatusPassed, at(-50))
		r30 := logRecord("gh", "delivery-30", queue.StatusRejected, at(-30))
		r30.Payload = []byte(`{"note":"Hello World"}`)
		r10 := logRecord("stripe", "evt_10", queue.StatusDelivered, at(-10))
		r10.Payload, r10.Body = nil, []byte(`{"object":"charge","amount":"UNIQUE-body"}`)
		late := logRecord("gh", "late", queue.StatusPassed, at(5))
		record(t, s, r50, r30, r10, late)
		clock.Advance(20 * time.Minute)
		async := enqueue(t, s, "gh", "async-20", queue.EnqueueOptions{}) // received at 10:20
		for _, c := range []struct {
			name string
			q    queue.ListQuery
			want []*queue.Event
		}{
			{"all", queue.ListQuery{}, []*queue.Event{async, late, r10, r30, r50}},
			{"since", queue.ListQuery{Since: at(-30)}, []*queue.Event{async, late, r10, r30}},
			{"until", queue.ListQuery{Until: at(-30)}, []*queue.Event{r50}},
			{"range", queue.ListQuery{Since: at(-40), Until: at(0)}, []*queue.Event{r10, r30}},
			{"since, late", queue.ListQuery{Since: at(1)}, []*queue.Event{async, late}},
			{"range and hook", queue.ListQuery{Hook: "gh", Since: at(-60), Until: at(-5)}, []*queue.Event{r30, r50}},
			{"range and status", queue.ListQuery{Status: queue.StatusPassed, Until: at(10)}, []*queue.Event{late, r50}},
			{"empty range", queue.ListQuery{Since: at(-20), Until: at(-20)}, nil},
			{"id, any case", queue.ListQuery{Q: "DELIVERY-"}, []*queue.Event{r30, r50}},
			{"payload text", queue.ListQuery{Q: "hello world"}, []*queue.Event{r30}},
			{"body text", queue.ListQuery{Q: "unique-BODY"}, []*queue.Event{r10}},
			{"payload of gh records", queue.ListQuery{Q: "refs/heads/main", Hook: "gh"}, []*queue.Event{late, r50}},
			{"text and status", queue.ListQuery{Q: "refs/heads", Status: queue.StatusPassed}, []*queue.Event{late, r50}},
			{"text and range", queue.ListQuery{Q: "delivery", Since: at(-40)}, []*queue.Event{r30}},
			{"text and id", queue.ListQuery{Q: "world", ID: "delivery-30"}, []*queue.Event{r30}},
			{"text in another id", queue.ListQuery{Q: "world", ID: "Delivery-50"}, nil},
			{"no match", queue.ListQuery{Q: "nothing like it"}, nil},
			{"text only in other fields", queue.ListQuery{Q: "post /hooks/gh"}, nil},
		} {
			for _, limit := range []int{0, 1, 2} {
				q := c.q
				q.Limit = limit
				got := listAll(t, s, q)
				if want := keysOf(c.want...); !slices.Equal(got, want) {
					t.Errorf("%s (limit %d): listed %v, want %v", c.name, limit, got, want)
				}
			}
		}
		page, err := s.List(ctx, queue.ListQuery{Since: at(-20), Until: at(-20)})
		if err != nil || page.Events == nil || len(page.Events) != 0 || page.Next != "" {
			t.Errorf("empty range: %v %#v", err, page)
		}
		// characters that JSON escapes, in an id and in a payload
		odd := logRecord("gh", `a<B>&"q"\z`, queue.StatusPassed, at(0))
		odd.Payload = []byte("line one\nline <two> & \"three\" caf\u00e9 Zoë")
		record(t, s, odd)
		for _, q := range []string{`<b>&"Q"\`, "<TWO> & \"", "ZOË", "\n"} {
			if got := listAll(t, s, queue.ListQuery{Q: q}); !slices.Equal(got, []string{odd.Key}) {
				t.Errorf("text %q: listed %v, want %v", q, got, odd.Key)
			}
		}
	})

	t.Run("trim removes the oldest finished records of a hook", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		queued := enqueue(t, s, "gh", "q0", queue.EnqueueOptions{}) // the oldest: never trimmed
		var recs []*queue.Event
		for i := range 10 {
			clock.Advance(time.Millisecond)
			ev := logRecord("gh", fmt.Sprintf("g%d", i), queue.StatusPassed, clock.Now())
			record(t, s, ev)
			recs = append(recs, ev)
		}
		other := logRecord("other", "o1", queue.StatusRejected, start)
		record(t, s, other)
		if n, err := s.Trim(ctx, "gh", 11); err != nil || n != 0 {
			t.Fatalf("trim at the cap: %d %v", n, err)
		}
		n, err := s.Trim(ctx, "gh", 7)
		if err != nil || n != 4 {
			t.Fatalf("trim to 7 removed %d (%v), want 4", n, err)
		}
		for i, ev := range recs {
			_, err := s.Get(ctx, ev.Key)
			if i < 4 && !errors.Is(err, queue.ErrNotFound) || i >= 4 && err != nil {
				t.Errorf("record %d after trim: %v", i, err)
			}
		}
		if page, err := s.List(ctx, queue.ListQuery{ID: "g0"}); err != nil || len(page.Events) != 0 {
			t.Errorf("a trimmed record is listed by id: %v %+v", err, page.Events)
		}
		if got := listAll(t, s, queue.ListQuery{Hook: "gh"}); !slices.Equal(got, keysOf(append([]*queue.Event{queued}, recs[4:]...)...)) {
			t.Errorf("listing after trim: %v", got)
		}
		if got := listAll(t, s, queue.ListQuery{Q: "g1"}); len(got) != 0 {
			t.Errorf("a trimmed record is found by text: %v", got)
		}
		get(t, s, other.Key)
		get(t, s, queued.Key)
		// more records, trimmed again: the oldest go first
		for i := 10; i < 13; i++ {
			clock.Advance(time.Millisecond)
			ev := logRecord("gh", fmt.Sprintf("g%d", i), queue.StatusRejected, clock.Now())
			record(t, s, ev)
			recs = append(recs, ev)
		}
		if n, err := s.Trim(ctx, "gh", 7); err != nil || n != 3 {
			t.Fatalf("second trim removed %d (%v), want 3", n, err)
		}
		if got := listAll(t, s, queue.ListQuery{Hook: "gh"}); !slices.Equal(got, keysOf(append([]*queue.Event{queued}, recs[7:]...)...)) {
			t.Errorf("listing after the second trim: %v", got)
		}
		// down to nothing: the queued record stays, and still delivers
		n, err = s.Trim(ctx, "gh", 0)
		if err != nil || n != 6 {
			t.Fatalf("trim to 0 removed %d (%v), want 6", n, err)
		}
		st, err := s.Stats(ctx)
		if err != nil || !maps.Equal(st.Counts["gh"], map[queue.Status]int{queue.StatusQueued: 1}) || st.Counts["other"][queue.StatusRejected] != 1 {
			t.Fatalf("stats after trims: %v %v", err, st.Counts)
		}
		counts, err := s.Counts(ctx, time.Time{})
		if err != nil || !maps.Equal(counts["gh"], map[queue.Status]int{queue.StatusQueued: 1}) {
			t.Fatalf("counts after trims: %v %v", err, counts)
		}
		leased := leaseN(t, s, 1, time.Minute)[0]
		if n, err := s.Trim(ctx, "gh", 0); err != nil || n != 0 {
			t.Fatalf("trim of a delivering record: %d %v", n, err)
		}
		if err := s.Ack(ctx, queue.LeaseOf(leased), queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Trim(ctx, "gh", 0); err != nil || n != 1 {
			t.Fatalf("trim of the delivered record: %d %v", n, err)
		}
	})

	t.Run("counts by hook and status since a time", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		hour := start.Add(-time.Hour)
		record(t, s,
			logRecord("gh", "1", queue.StatusPassed, hour.Add(-time.Minute)),
			logRecord("gh", "2", queue.StatusPassed, hour),
			logRecord("gh", "3", queue.StatusRejected, hour.Add(time.Minute)),
			logRecord("stripe", "4", queue.StatusDuplicate, start.Add(-time.Second)),
			logRecord("stripe", "5", queue.StatusDead, start.Add(-2*time.Hour)),
		)
		enqueue(t, s, "stripe", "6", queue.EnqueueOptions{}) // received now
		counts, err := s.Counts(ctx, hour)
		want := map[string]map[queue.Status]int{
			"gh":     {queue.StatusPassed: 1, queue.StatusRejected: 1},
			"stripe": {queue.StatusDuplicate: 1, queue.StatusQueued: 1},
		}
		if err != nil || len(counts) != 2 || !maps.Equal(counts["gh"], want["gh"]) || !maps.Equal(counts["stripe"], want["stripe"]) {
			t.Fatalf("counts since an hour: %v %v", err, counts)
		}
		counts, err = s.Counts(ctx, start.Add(time.Second))
		if err != nil || len(counts) != 0 {
			t.Fatalf("counts since the future: %v %v", err, counts)
		}
		counts, err = s.Counts(ctx, time.Time{})
		if err != nil || counts["gh"][queue.StatusPassed] != 2 || counts["stripe"][queue.StatusDead] != 1 {
			t.Fatalf("all counts: %v %v", err, counts)
		}
	})

	t.Run("purge removes every finished status", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		var keys []string
		for _, status := range []queue.Status{queue.StatusRejected, queue.StatusPassed, queue.StatusDuplicate, queue.StatusDelivered, queue.StatusDead} {
			ev := logRecord("gh", string(status), status, start)
			record(t, s, ev)
			keys = append(keys, ev.Key)
		}
		queued := enqueue(t, s, "gh", "q", queue.EnqueueOptions{})
		clock.Advance(time.Hour)
		recent := logRecord("gh", "recent", queue.StatusRejected, clock.Now())
		record(t, s, recent)
		n, err := s.Purge(ctx, clock.Now().Add(-time.Minute))
		if err != nil || n != 5 {
			t.Fatalf("purge removed %d (%v), want 5", n, err)
		}
		for _, key := range keys {
			if _, err := s.Get(ctx, key); !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("%s after purge: %v", key, err)
			}
		}
		get(t, s, queued.Key)
		get(t, s, recent.Key)
		st, err := s.Stats(ctx)
		if err != nil || !maps.Equal(st.Counts["gh"], map[queue.Status]int{queue.StatusQueued: 1, queue.StatusRejected: 1}) {
			t.Fatalf("stats after purge: %v %v", err, st.Counts)
		}
	})

	t.Run("a text query reads a bounded number of records per call", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		needle := logRecord("gh", "needle", queue.StatusPassed, start)
		record(t, s, needle)
		hay := make([]*queue.Event, 0, 500)
		// exactly ListScanMax newer records: the first call stops at the
		// needle, the second starts there
		for i := range queue.ListScanMax {
			hay = append(hay, &queue.Event{ID: fmt.Sprintf("h%d", i), Hook: "gh", Action: -1, Status: queue.StatusPassed, ReceivedAt: start})
			if len(hay) == cap(hay) || i == queue.ListScanMax-1 {
				record(t, s, hay...)
				hay = hay[:0]
			}
		}
		page, err := s.List(ctx, queue.ListQuery{Q: "NEEDLE"})
		if err != nil || len(page.Events) != 0 || page.Next == "" {
			t.Fatalf("first call: %v %d events, next %q", err, len(page.Events), page.Next)
		}
		page, err = s.List(ctx, queue.ListQuery{Q: "NEEDLE", Cursor: page.Next})
		if err != nil || len(page.Events) != 1 || page.Events[0].Key != needle.Key {
			t.Fatalf("second call: %v %+v next %q", err, page.Events, page.Next)
		}
	})
}

// benchEnqueue measures durable enqueues of 1 KiB events, one sender at a
// time and 64 at once, with and without a dedup window.
func benchEnqueue(b *testing.B, open func(b *testing.B) queue.Store) {
	body := bytes.Repeat([]byte{'x'}, 1024)
	ev := func(id string) []*queue.Event {
		return []*queue.Event{{ID: id, Hook: "h", Body: body, ReceivedAt: time.Now()}}
	}
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		i := 0
		b.ResetTimer() // opening is not enqueueing
		for b.Loop() {
			i++
			if err := s.Enqueue(context.Background(), ev(fmt.Sprint(i)), queue.EnqueueOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	parallel := func(opts queue.EnqueueOptions) func(b *testing.B) {
		return func(b *testing.B) {
			s := open(b)
			var n atomic.Int64
			b.ResetTimer()
			b.SetParallelism(32) // 2 cores × 32 = 64 goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Enqueue(context.Background(), ev(fmt.Sprint(n.Add(1))), opts); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		}
	}
	b.Run("parallel64", parallel(queue.EnqueueOptions{}))
	// with deduplicate: the dedup mark is read and written too
	b.Run("parallel64-dedup", parallel(queue.EnqueueOptions{Dedup: 24 * time.Hour}))
	// written leased, as for an idle worker
	b.Run("parallel64-leased", parallel(queue.EnqueueOptions{Dedup: 24 * time.Hour, LeaseFor: time.Minute}))
}

// benchDrain measures leasing and acking a stored backlog, 64 acks in
// flight at a time.
func benchDrain(b *testing.B, s queue.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := g; i < b.N; i += 64 {
				_ = s.Enqueue(ctx, []*queue.Event{{ID: fmt.Sprint(i), Hook: "h", Body: []byte(`{"a":1}`)}}, queue.EnqueueOptions{})
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	done := 0
	for done < b.N {
		evs, err := s.Lease(ctx, 64, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		var acks sync.WaitGroup
		for _, ev := range evs {
			acks.Go(func() { _ = s.Ack(ctx, queue.LeaseOf(ev), queue.Attempt{Status: 200}) })
		}
		acks.Wait()
		done += len(evs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
