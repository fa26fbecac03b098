package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddy-webhooks/gateway/queue"
)

func TestMain(m *testing.M) {
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

// runConformance is the behaviour every Store must have.
func runConformance(t *testing.T, open opener) {
	ctx := context.Background()
	newEvent := func(hook, id string) *queue.Event {
		return &queue.Event{ID: id, Hook: hook, Payload: []byte(`{"id":"` + id + `"}`), Header: map[string]string{"Content-Type": "application/json"}}
	}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	t.Run("lifecycle", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		if err := s.Enqueue(ctx, newEvent("pets", "e1"), 0); err != nil {
			t.Fatal(err)
		}
		evs, err := s.Lease(ctx, 10, time.Minute)
		if err != nil || len(evs) != 1 || evs[0].ID != "e1" || evs[0].Status != queue.StatusDelivering || string(evs[0].Payload) != `{"id":"e1"}` || evs[0].Header["Content-Type"] != "application/json" {
			t.Fatalf("lease: %v %+v", err, evs)
		}
		if again, _ := s.Lease(ctx, 10, time.Minute); len(again) != 0 {
			t.Fatalf("leased twice: %+v", again)
		}
		if err := s.Ack(ctx, "pets", "e1", queue.Attempt{At: clock.Now(), Status: 200, Latency: 3 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		ev, err := s.Get(ctx, "pets", "e1")
		if err != nil || ev.Status != queue.StatusDelivered || len(ev.Attempts) != 1 || ev.Attempts[0].Status != 200 || ev.Attempts[0].Latency != 3*time.Millisecond {
			t.Fatalf("after ack: %v %+v", err, ev)
		}
		clock.Advance(2 * time.Minute)
		if again, _ := s.Lease(ctx, 10, time.Minute); len(again) != 0 {
			t.Fatalf("delivered event leased again: %+v", again)
		}
		if _, err := s.Get(ctx, "pets", "nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("missing event: %v", err)
		}
	})

	t.Run("purge", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		for _, id := range []string{"p-delivered", "p-dead", "p-queued", "p-replayed", "p-recent"} {
			if err := s.Enqueue(ctx, newEvent("purge", id), 0); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := s.Lease(ctx, 10, time.Hour)
		if err != nil || len(evs) != 5 {
			t.Fatalf("lease: %v %d", err, len(evs))
		}
		at := queue.Attempt{At: clock.Now(), Status: 200}
		for _, step := range []error{
			s.Ack(ctx, "purge", "p-delivered", at),
			s.Dead(ctx, "purge", "p-dead", queue.Attempt{At: clock.Now(), Status: 400}),
			s.Retry(ctx, "purge", "p-queued", queue.Attempt{At: clock.Now(), Status: 503}, 10*time.Hour),
			s.Ack(ctx, "purge", "p-replayed", at),
		} {
			if step != nil {
				t.Fatal(step)
			}
		}
		clock.Advance(2 * time.Hour)
		if err := s.Replay(ctx, "purge", "p-replayed"); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, "purge", "p-recent", at); err != nil {
			t.Fatal(err)
		}
		n, err := s.Purge(ctx, clock.Now().Add(-time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("purge removed %d (%v), want the delivered and the dead event", n, err)
		}
		for id, want := range map[string]bool{"p-delivered": false, "p-dead": false, "p-queued": true, "p-replayed": true, "p-recent": true} {
			_, err := s.Get(ctx, "purge", id)
			if want && err != nil || !want && !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("%s after purge: %v", id, err)
			}
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Counts["purge"][queue.StatusDelivered] != 1 || st.Counts["purge"][queue.StatusDead] != 0 {
			t.Errorf("stats after purge: %v %+v", err, st.Counts["purge"])
		}
		// the same id can be accepted again once its record is gone
		if err := s.Enqueue(ctx, newEvent("purge", "p-delivered"), time.Hour); err != nil {
			t.Fatalf("enqueue after purge: %v", err)
		}
	})

	t.Run("release", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		if err := s.Enqueue(ctx, newEvent("pets", "r1"), 0); err != nil {
			t.Fatal(err)
		}
		if evs, err := s.Lease(ctx, 10, time.Hour); err != nil || len(evs) != 1 {
			t.Fatalf("lease: %v %+v", err, evs)
		}
		if err := s.Release(ctx, "pets", "r1"); err != nil {
			t.Fatal(err)
		}
		evs, err := s.Lease(ctx, 10, time.Hour)
		if err != nil || len(evs) != 1 || evs[0].ID != "r1" || len(evs[0].Attempts) != 0 {
			t.Fatalf("a released event is due at once, with no attempt: %v %+v", err, evs)
		}
		if err := s.Ack(ctx, "pets", "r1", queue.Attempt{At: clock.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "pets", "r1"); err != nil {
			t.Fatal(err)
		}
		if ev, err := s.Get(ctx, "pets", "r1"); err != nil || ev.Status != queue.StatusDelivered {
			t.Fatalf("release changed a delivered event: %v %+v", err, ev)
		}
	})

	t.Run("retry, dead and replay", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		_ = s.Enqueue(ctx, newEvent("pets", "e2"), 0)
		evs, _ := s.Lease(ctx, 1, time.Minute)
		if len(evs) != 1 {
			t.Fatal("not leased")
		}
		if err := s.Retry(ctx, "pets", "e2", queue.Attempt{At: clock.Now(), Status: 503, Error: "upstream answered 503"}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if evs, _ := s.Lease(ctx, 1, time.Minute); len(evs) != 0 {
			t.Fatal("retried event due before its delay")
		}
		clock.Advance(6 * time.Second)
		evs, _ = s.Lease(ctx, 1, time.Minute)
		if len(evs) != 1 || len(evs[0].Attempts) != 1 {
			t.Fatalf("retried event not due after its delay: %+v", evs)
		}
		if err := s.Dead(ctx, "pets", "e2", queue.Attempt{At: clock.Now(), Error: "connection refused"}); err != nil {
			t.Fatal(err)
		}
		ev, _ := s.Get(ctx, "pets", "e2")
		if ev.Status != queue.StatusDead || len(ev.Attempts) != 2 {
			t.Fatalf("dead: %+v", ev)
		}
		if err := s.Replay(ctx, "pets", "e2"); err != nil {
			t.Fatal(err)
		}
		evs, _ = s.Lease(ctx, 1, time.Minute)
		if len(evs) != 1 || evs[0].ID != "e2" || len(evs[0].Attempts) != 2 {
			t.Fatalf("replayed event: %+v", evs)
		}
		if err := s.Replay(ctx, "pets", "e2"); !errors.Is(err, queue.ErrNotReplayable) {
			t.Fatalf("replay of a delivering event: %v", err)
		}
		if err := s.Replay(ctx, "pets", "nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("replay of a missing event: %v", err)
		}
	})

	t.Run("lease expiry makes an event due again", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		_ = s.Enqueue(ctx, newEvent("pets", "e3"), 0)
		if evs, _ := s.Lease(ctx, 1, 30*time.Second); len(evs) != 1 {
			t.Fatal("not leased")
		}
		clock.Advance(31 * time.Second)
		evs, _ := s.Lease(ctx, 1, 30*time.Second)
		if len(evs) != 1 || evs[0].ID != "e3" {
			t.Fatalf("expired lease not due again: %+v", evs)
		}
	})

	t.Run("dedup window", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		if err := s.Enqueue(ctx, newEvent("pets", "d1"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Enqueue(ctx, newEvent("pets", "d1"), time.Hour); !errors.Is(err, queue.ErrDuplicate) {
			t.Fatalf("duplicate within the window: %v", err)
		}
		if err := s.Enqueue(ctx, newEvent("orders", "d1"), time.Hour); err != nil {
			t.Fatalf("same id, other hook: %v", err)
		}
		evs, _ := s.Lease(ctx, 10, time.Minute)
		if len(evs) != 2 {
			t.Fatalf("leased %d, want 2 (the duplicate stored nothing)", len(evs))
		}
		clock.Advance(2 * time.Hour)
		if err := s.Enqueue(ctx, newEvent("pets", "d1"), time.Hour); err != nil {
			t.Fatalf("after the window: %v", err)
		}
	})

	t.Run("lease respects max and due order", func(t *testing.T) {
		clock := &fakeClock{now: start}
		s := open(t, clock)
		for i := range 5 {
			_ = s.Enqueue(ctx, newEvent("pets", fmt.Sprintf("o%d", i)), 0)
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
		for i := range 7 {
			_ = s.Enqueue(ctx, newEvent("pets", fmt.Sprintf("l%02d", i)), 0)
		}
		clock.Advance(time.Millisecond)
		_ = s.Enqueue(ctx, newEvent("orders", "x"), 0)
		evs, _ := s.Lease(ctx, 2, time.Minute)
		for _, ev := range evs {
			_ = s.Ack(ctx, ev.Hook, ev.ID, queue.Attempt{At: clock.Now(), Status: 200})
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
			t.Fatalf("paged %d events of pets, want 7", len(all))
		}
		for _, ev := range all {
			if ev.Hook != "pets" || ev.Payload != nil {
				t.Errorf("listing %+v", ev)
			}
		}
		page, _ := s.List(ctx, queue.ListQuery{Hook: "pets", Status: queue.StatusDelivered})
		if len(page.Events) != 2 {
			t.Fatalf("delivered: %d", len(page.Events))
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
					if err := s.Enqueue(ctx, newEvent("load", fmt.Sprintf("g%02d-%d", g, i)), time.Hour); err != nil {
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
}

func openBolt(t *testing.T, clock *fakeClock) queue.Store {
	s, err := queue.OpenBolt(filepath.Join(t.TempDir(), "events.db"), queue.BoltOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestBoltConformance(t *testing.T) {
	runConformance(t, openBolt)
}

func TestBoltRestart(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := queue.OpenBolt(path, queue.BoltOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Enqueue(ctx, &queue.Event{ID: fmt.Sprint(i), Hook: "h", Payload: []byte("{}")}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if evs, _ := s.Lease(ctx, 2, time.Hour); len(evs) != 2 {
		t.Fatal("lease")
	}
	// a second opener of the same file fails instead of hanging
	if _, err := queue.OpenBolt(path, queue.BoltOptions{OpenTimeout: 200 * time.Millisecond}); err == nil {
		t.Fatal("the file was opened twice")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = queue.OpenBolt(path, queue.BoltOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	evs, _ := s.Lease(ctx, 10, time.Hour)
	if len(evs) != 3 {
		t.Fatalf("after restart %d events due, want all 3 (2 were leased when it stopped)", len(evs))
	}
	if err := s.Enqueue(ctx, &queue.Event{ID: "0", Hook: "h", Payload: []byte("{}")}, time.Hour); !errors.Is(err, queue.ErrDuplicate) {
		t.Fatalf("dedup across restart: %v", err)
	}
}

func BenchmarkBoltEnqueue(b *testing.B) {
	benchEnqueue(b, func(b *testing.B) queue.Store {
		s, err := queue.OpenBolt(filepath.Join(b.TempDir(), "events.db"), queue.BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// benchEnqueue measures durable enqueues of 1 KiB events, one sender at a
// time and 64 at once, with and without a dedup window.
func benchEnqueue(b *testing.B, open func(b *testing.B) queue.Store) {
	payload := bytes.Repeat([]byte{'x'}, 1024)
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		i := 0
		b.ResetTimer() // opening is not enqueueing
		for b.Loop() {
			i++
			if err := s.Enqueue(context.Background(), &queue.Event{ID: fmt.Sprint(i), Hook: "h", Payload: payload}, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	parallel := func(window time.Duration) func(b *testing.B) {
		return func(b *testing.B) {
			s := open(b)
			var n atomic.Int64
			b.ResetTimer()
			b.SetParallelism(32) // 2 cores × 32 = 64 goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint(n.Add(1))
					if err := s.Enqueue(context.Background(), &queue.Event{ID: id, Hook: "h", Payload: payload}, window); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		}
	}
	b.Run("parallel64", parallel(0))
	// with deduplicate: the dedup mark is read and written too
	b.Run("parallel64-dedup", parallel(24*time.Hour))
}

func BenchmarkBoltDrain(b *testing.B) {
	s, err := queue.OpenBolt(filepath.Join(b.TempDir(), "events.db"), queue.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := g; i < b.N; i += 64 {
				_ = s.Enqueue(ctx, &queue.Event{ID: fmt.Sprint(i), Hook: "h", Payload: []byte(`{"a":1}`)}, 0)
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
			acks.Go(func() { _ = s.Ack(ctx, ev.Hook, ev.ID, queue.Attempt{Status: 200}) })
		}
		acks.Wait()
		done += len(evs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
