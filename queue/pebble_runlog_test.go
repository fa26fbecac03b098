package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/caddy-webhooks/gateway/queue"
)

// A store written before the hook index existed gets it at open: counts,
// trims and listings by hook see its records.
func TestPebbleHookIndexAddedAtOpen(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	queued := enqueue(t, s, "gh", "q", queue.EnqueueOptions{})
	var keys []string
	for i := range 5 {
		ev := logRecord("gh", fmt.Sprint(i), queue.StatusPassed, clock.Now())
		record(t, s, ev)
		keys = append(keys, ev.Key)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// remove the index and the layout mark, as in a store of an earlier
	// version
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRange([]byte{'H'}, []byte{'H' + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete([]byte{'V'}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	counts, err := s.Counts(ctx, time.Time{})
	if err != nil || !maps.Equal(counts["gh"], map[queue.Status]int{queue.StatusQueued: 1, queue.StatusPassed: 5}) {
		t.Fatalf("counts: %v %v", err, counts)
	}
	newest := slices.Clone(keys)
	slices.Reverse(newest)
	if got := listAll(t, s, queue.ListQuery{Hook: "gh", Status: queue.StatusPassed}); !slices.Equal(got, newest) {
		t.Fatalf("listing by hook and status: %v, want %v", got, newest)
	}
	n, err := s.Trim(ctx, "gh", 3)
	if err != nil || n != 3 {
		t.Fatalf("trim: %d %v", n, err)
	}
	if got, want := listAll(t, s, queue.ListQuery{Hook: "gh"}), []string{keys[4], keys[3], queued.Key}; !slices.Equal(got, want) {
		t.Fatalf("after trim: %v, want %v", got, want)
	}
}

// quietPebble drops Pebble's informational lines.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any) {}

func (quietPebble) Errorf(format string, args ...any) { log.Printf(format, args...) }

func (quietPebble) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }

// The bounds of time-range listings hold across a restart: a record
// written long after it was received is found by its receive time.
func TestPebbleTimeRangeAfterRestart(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	dir := t.TempDir()
	s := openPebbleAt(t, clock, dir)
	old := logRecord("gh", "old", queue.StatusDead, start.Add(-3*time.Hour))
	ahead := logRecord("gh", "ahead", queue.StatusPassed, start.Add(time.Hour))
	record(t, s, old, ahead)
	clock.Advance(time.Minute)
	s = reopen(t, s)
	for _, c := range []struct {
		q    queue.ListQuery
		want []string
	}{
		{queue.ListQuery{Until: start.Add(-2 * time.Hour)}, []string{old.Key}},
		{queue.ListQuery{Hook: "gh", Until: start.Add(-2 * time.Hour)}, []string{old.Key}},
		{queue.ListQuery{Status: queue.StatusPassed, Since: start.Add(30 * time.Minute)}, []string{ahead.Key}},
		{queue.ListQuery{Since: start.Add(30 * time.Minute)}, []string{ahead.Key}},
	} {
		if got := listAll(t, s, c.q); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.q, got, c.want)
		}
	}
	counts, err := s.Counts(ctx, start.Add(30*time.Minute))
	if err != nil || !maps.Equal(counts["gh"], map[queue.Status]int{queue.StatusPassed: 1}) {
		t.Fatalf("counts: %v %v", err, counts)
	}
}

// BenchmarkRecord measures Record of small sync records (a few headers,
// a 200-byte payload, one attempt) in batches of 64, as the recorder
// writes them.
func BenchmarkRecord(b *testing.B) {
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	payload := []byte(`{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"76ae82c7b1a177c8d03f9e96e0adf2466113728f","repository":{"full_name":"octo/hello"},"pusher":{"name":"octocat"}}`)
	batch := make([]*queue.Event, 64)
	n := 0
	ctx := context.Background()
	for b.Loop() {
		now := time.Now()
		for i := range batch {
			n++
			batch[i] = &queue.Event{
				ID: fmt.Sprintf("delivery-%d", n), Hook: fmt.Sprintf("hook%d", n%4), Action: 0, Mode: "sync",
				Status: queue.StatusDelivered, Auth: "github", Inbound: 200, Request: "POST /hooks/github",
				RemoteIP: "192.0.2.7", ReceivedAt: now, Payload: payload,
				Headers: map[string][]string{
					"Content-Type": {"application/json"}, "X-Github-Event": {"push"},
					"X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}, "X-Hub-Signature-256": {"[redacted]"},
				},
				Attempts: []queue.Attempt{{At: now, Status: 200, Latency: 3 * time.Millisecond}},
			}
		}
		if err := s.Record(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRecordHarness measures Record of the records the load
// harness's sync-logfull scenario writes: a 1 KiB payload, a 300-byte
// sent body, five headers encoded by the request path, one attempt, in
// batches of 170 (20 ms of 8,500 requests/s), the hook trimmed to 100,000
// records once 1% over, as the recorder does.
func BenchmarkRecordHarness(b *testing.B) {
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	payload := bytes.Repeat([]byte("p"), 1024)
	body := bytes.Repeat([]byte("b"), 300)
	var headers []byte
	for _, kv := range [][2]string{
		{"Content-Type", "application/json"},
		{"X-Hub-Signature-256", "[redacted]"},
		{"X-Github-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"Content-Length", "1024"},
		{"User-Agent", "wrk"},
	} {
		headers = queue.AppendHeader(headers, kv[0], []string{kv[1]})
	}
	batch := make([]*queue.Event, 170)
	now := time.Now()
	for i := range batch {
		batch[i] = &queue.Event{
			ID: fmt.Sprintf("72d3162e-cc78-11e3-81ab-%012d", i), Hook: "sync", Action: 0, Mode: "sync",
			Status: queue.StatusDelivered, Auth: "github", Inbound: 200, Request: "POST /",
			RemoteIP: "127.0.0.1", ReceivedAt: now, UpdatedAt: now, Payload: payload, Body: body, HeaderBlock: headers,
			Attempts: []queue.Attempt{{At: now, Status: 200, Latency: 3 * time.Millisecond}},
		}
	}
	n, stored := 0, 0
	ctx := context.Background()
	for b.Loop() {
		if err := s.Record(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
		if stored += len(batch); stored > 101000 {
			removed, err := s.Trim(ctx, "sync", 100000)
			if err != nil {
				b.Fatal(err)
			}
			stored -= removed
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
}

// BenchmarkRecordTrimmed measures Record as BenchmarkRecord does, in a
// hook held at 5,000 records by a Trim after each batch: the steady state
// of a hook at its log_max.
func BenchmarkRecordTrimmed(b *testing.B) {
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	payload := []byte(`{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"76ae82c7b1a177c8d03f9e96e0adf2466113728f","repository":{"full_name":"octo/hello"},"pusher":{"name":"octocat"}}`)
	batch := make([]*queue.Event, 64)
	n := 0
	ctx := context.Background()
	for b.Loop() {
		now := time.Now()
		for i := range batch {
			n++
			batch[i] = &queue.Event{
				ID: fmt.Sprintf("delivery-%d", n), Hook: "gh", Action: 0, Mode: "sync",
				Status: queue.StatusDelivered, Auth: "github", Inbound: 200, Request: "POST /hooks/github",
				RemoteIP: "192.0.2.7", ReceivedAt: now, Payload: payload, Body: payload[:100],
				Headers: map[string][]string{
					"Content-Type": {"application/json"}, "X-Github-Event": {"push"},
					"X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}, "X-Hub-Signature-256": {"[redacted]"},
				},
				Attempts: []queue.Attempt{{At: now, Status: 200, Latency: 3 * time.Millisecond}},
			}
		}
		if err := s.Record(ctx, batch); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Trim(ctx, "gh", 5000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPebbleRunLogReads measures the reads of the run log's page
// over 50,000 small records of 4 hooks: counts since a time, a page of
// one hook and status, and a text query that matches nothing (it reads
// ListScanMax records).
func BenchmarkPebbleRunLogReads(b *testing.B) {
	ctx := context.Background()
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	start := time.Now().Add(-time.Hour)
	statuses := []queue.Status{queue.StatusDelivered, queue.StatusRejected, queue.StatusPassed, queue.StatusDead}
	batch := make([]*queue.Event, 0, 500)
	for i := range 50000 {
		ev := logRecord(fmt.Sprintf("hook%d", i%4), fmt.Sprintf("delivery-%d", i), statuses[i%3], start.Add(time.Duration(i)*50*time.Millisecond))
		batch = append(batch, ev)
		if len(batch) == cap(batch) {
			if err := s.Record(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Run("counts-since", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Counts(ctx, start.Add(30*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list-hook-status", func(b *testing.B) {
		for b.Loop() {
			if page, err := s.List(ctx, queue.ListQuery{Hook: "hook1", Status: queue.StatusRejected}); err != nil || len(page.Events) != 50 {
				b.Fatal(err, len(page.Events))
			}
		}
	})
	b.Run("list-text-scan", func(b *testing.B) {
		for b.Loop() {
			if page, err := s.List(ctx, queue.ListQuery{Q: "no such text"}); err != nil || page.Next == "" {
				b.Fatal(err, page.Next)
			}
		}
	})
}

// Trims running while records are written, events delivered and
// replayed: no queued or delivering record is removed, and the counts in
// memory, the hook index and a full listing agree at the end.
func TestPebbleTrimWhileWriting(t *testing.T) {
	ctx := context.Background()
	s, err := queue.OpenPebble(t.TempDir(), queue.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	const keep = 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	// the recorder
	wg.Go(func() {
		for i := range 40 {
			batch := make([]*queue.Event, 10)
			for j := range batch {
				batch[j] = logRecord("h", fmt.Sprintf("r%d-%d", i, j), queue.StatusPassed, time.Now())
			}
			if err := s.Record(ctx, batch); err != nil {
				errs <- err
				return
			}
		}
	})
	var mu sync.Mutex
	// keys of async events not yet delivered
	live := map[string]bool{}
	// accepts, deliveries and replays
	wg.Go(func() {
		for i := range 150 {
			ev := &queue.Event{ID: fmt.Sprintf("a%d", i), Hook: "h", Body: []byte(`{}`)}
			if err := s.Enqueue(ctx, []*queue.Event{ev}, queue.EnqueueOptions{}); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			live[ev.Key] = true
			mu.Unlock()
			if i%3 != 0 {
				continue
			}
			evs, err := s.Lease(ctx, 2, time.Minute)
			if err != nil {
				errs <- err
				return
			}
			for _, l := range evs {
				mu.Lock()
				delete(live, l.Key) // acked below: from now on it may be trimmed
				mu.Unlock()
				if err := s.Ack(ctx, queue.LeaseOf(l), queue.Attempt{At: time.Now(), Status: 200}); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					switch err := s.Replay(ctx, l.Key); {
					case err == nil:
						mu.Lock()
						live[l.Key] = true
						mu.Unlock()
					case !errors.Is(err, queue.ErrNotFound): // trimmed before the replay: fine
						errs <- err
						return
					}
				}
			}
		}
	})
	trims := make(chan struct{})
	// the trimmer
	go func() {
		defer close(trims)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Trim(ctx, "h", keep); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-trims
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.Trim(ctx, "h", keep); err != nil {
		t.Fatal(err)
	}
	for key := range live {
		ev, err := s.Get(ctx, key)
		if err != nil || ev.Status.Finished() {
			t.Errorf("queued event %s after the trims: %v %+v", key, err, ev)
		}
	}
	listed := map[queue.Status]int{}
	total := 0
	for _, key := range listAll(t, s, queue.ListQuery{Hook: "h", Limit: 500}) {
		listed[get(t, s, key).Status]++
		total++
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := s.Counts(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(listed, st.Counts["h"]) || !maps.Equal(listed, counts["h"]) {
		t.Fatalf("listed %v, stats %v, counts %v", listed, st.Counts["h"], counts["h"])
	}
	if unfinished := listed[queue.StatusQueued] + listed[queue.StatusDelivering]; total > max(keep, unfinished) {
		t.Fatalf("%d records left (%v), keep %d", total, listed, keep)
	}
}
