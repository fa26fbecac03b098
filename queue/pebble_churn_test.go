package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/queue"
)

// Under churn (senders enqueueing, some already leased; workers acking,
// retrying after short delays, releasing and deferring), every record is
// delivered: none is left due but never leased again.
func TestPebbleChurnDeliversEverything(t *testing.T) {
	s, err := queue.OpenPebble(t.TempDir(), queue.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	const senders, perSender = 4, 1500
	var delivered sync.Map
	var acked atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				evs, err := s.Lease(ctx, 8, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(evs) == 0 {
					time.Sleep(time.Millisecond)
				}
				for _, ev := range evs {
					handle(t, s, ev, rng, &delivered, &acked)
				}
			}
		})
	}
	var sw sync.WaitGroup
	for i := range senders {
		sw.Go(func() {
			for j := range perSender {
				ev := &queue.Event{ID: fmt.Sprintf("s%d-%d", i, j), Hook: "churn", Body: []byte(`{}`)}
				opts := queue.EnqueueOptions{}
				if j%3 == 0 {
					opts.LeaseFor = time.Minute
				}
				if err := s.Enqueue(ctx, []*queue.Event{ev}, opts); err != nil {
					t.Error(err)
					return
				}
				if ev.Status == queue.StatusDelivering {
					handle(t, s, ev, rand.New(rand.NewPCG(uint64(j), 9)), &delivered, &acked)
				}
			}
		})
	}
	sw.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for acked.Load() < senders*perSender && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	if n := acked.Load(); n != senders*perSender {
		st, _ := s.Stats(ctx)
		t.Fatalf("%d of %d records delivered; store counts %v", n, senders*perSender, st.Counts)
	}
}

// handle makes one pretend attempt: ack (most), retry soon, release, or
// defer.
func handle(t *testing.T, s queue.Store, ev *queue.Event, rng *rand.Rand, delivered *sync.Map, acked *atomic.Int64) {
	ctx := context.Background()
	l := queue.LeaseOf(ev)
	var err error
	switch r := rng.IntN(10); {
	case r < 6:
		if err = s.Ack(ctx, l, queue.Attempt{At: time.Now(), Status: 200}); err == nil {
			if _, dup := delivered.LoadOrStore(ev.Key, true); dup {
				t.Errorf("%s acked twice", ev.Key)
			}
			acked.Add(1)
		}
	case r < 8:
		err = s.Retry(ctx, l, queue.Attempt{At: time.Now(), Status: 503}, time.Duration(rng.IntN(3))*time.Millisecond)
	case r < 9:
		err = s.Release(ctx, l)
	default:
		err = s.Defer(ctx, l, time.Duration(rng.IntN(2))*time.Millisecond)
	}
	if err != nil {
		t.Errorf("%s: %v", ev.Key, err)
	}
}
