package queue_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/queue"
)

// segmentFiles lists the run log segments of the Pebble store in dir.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "runlog", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// segStore opens the Pebble store in dir; close closes it (the test's
// end closes it if still open).
type segStore struct {
	queue.Store
	t     *testing.T
	clock *fakeClock
	dir   string
}

// newSegStore opens a store in a new directory, on a test clock.
func newSegStore(t *testing.T) *segStore {
	t.Helper()
	return openSegStore(t, &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}, t.TempDir())
}

func openSegStore(t *testing.T, clock *fakeClock, dir string) *segStore {
	t.Helper()
	s := &segStore{t: t, clock: clock, dir: dir}
	s.open()
	t.Cleanup(func() {
		if s.Store != nil {
			_ = s.Close()
		}
	})
	return s
}

func (s *segStore) open() {
	s.t.Helper()
	st, err := queue.OpenPebble(s.dir, queue.PebbleOptions{Now: s.clock.Now})
	if err != nil {
		s.t.Fatal(err)
	}
	s.Store = st
}

// reopen closes the store and opens it again.
func (s *segStore) reopen() {
	s.t.Helper()
	if err := s.Close(); err != nil {
		s.t.Fatal(err)
	}
	s.Store = nil
	s.open()
}

// syncRecord is a record as a sync request leaves it: an action, what
// was sent, the received payload and headers.
func syncRecord(hook, id string, received time.Time) *queue.Event {
	ev := logRecord(hook, id, queue.StatusDelivered, received)
	ev.Mode, ev.Action = "sync", 0
	ev.Body = []byte(`{"sent":"` + id + `","pad":"` + strings.Repeat("x", 200) + `"}`)
	ev.Attempts = []queue.Attempt{{At: received, Status: 200, Latency: time.Millisecond}}
	return ev
}

// Records written by Record live in segment files named by groups in
// Pebble: across restarts every record reads back whole, listings and
// counts find them beside enqueued events, new keys stay above old ones,
// and trims and purges delete the segments no record needs any more.
func TestPebbleSegmentsAcrossRestarts(t *testing.T) {
	defer queue.SetSegmentMax(2048)()
	ctx := context.Background()
	s := newSegStore(t)
	clock, dir := s.clock, s.dir
	queued := enqueue(t, s, "a", "async-1", queue.EnqueueOptions{})
	want := map[string]*queue.Event{}
	for i := range 20 {
		var batch []*queue.Event
		for j := range 3 {
			hook := []string{"a", "b"}[j%2]
			ev := syncRecord(hook, fmt.Sprintf("ev-%d-%d", i, j), clock.Now())
			batch = append(batch, ev)
		}
		record(t, s, batch...)
		for _, ev := range batch {
			want[ev.Key] = ev
		}
		clock.Advance(time.Second)
	}
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("%d segment files for 60 records of about 700 bytes with segments of 2 KiB", n)
	}
	s.reopen()
	for key, w := range want {
		got, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s after a restart: %v", key, err)
		}
		if err := sameRequest(got, w, true); err != nil {
			t.Fatalf("record %s after a restart: %v", key, err)
		}
		if got.Status != queue.StatusDelivered || len(got.Attempts) != 1 || got.Attempts[0].Status != 200 {
			t.Fatalf("record %s after a restart: status %s attempts %+v", key, got.Status, got.Attempts)
		}
	}
	// hook a: its 40 records and the queued event, newest first, over
	// pages of 7
	listed := listAll(t, s, queue.ListQuery{Hook: "a", Limit: 7})
	var wantA []string
	for key, ev := range want {
		if ev.Hook == "a" {
			wantA = append(wantA, key)
		}
	}
	wantA = append(wantA, queued.Key)
	slices.Sort(wantA)
	slices.Reverse(wantA)
	if !slices.Equal(listed, wantA) {
		t.Fatalf("hook a lists %d records %v, want %d %v", len(listed), listed, len(wantA), wantA)
	}
	counts, err := s.Counts(ctx, time.Time{})
	if err != nil || !maps.Equal(counts["a"], map[queue.Status]int{queue.StatusQueued: 1, queue.StatusDelivered: 40}) ||
		!maps.Equal(counts["b"], map[queue.Status]int{queue.StatusDelivered: 20}) {
		t.Fatalf("counts after a restart: %v %v", counts, err)
	}
	before := segmentFiles(t, dir)
	late := syncRecord("b", "after-restart", clock.Now())
	record(t, s, late)
	for key := range want {
		if late.Key <= key {
			t.Fatalf("a key after the restart (%s) is not above an old one (%s)", late.Key, key)
		}
	}
	if after := segmentFiles(t, dir); len(after) != len(before)+1 || slices.Contains(before, after[len(after)-1]) {
		t.Fatalf("the first Record after a restart writes a new segment: %v, then %v", before, after)
	}

	// trimming hook b to 5 removes its 16 oldest; purging the rest
	// leaves no finished record, and no segment once reopened
	removed, err := s.Trim(ctx, "b", 5)
	if err != nil || removed != 16 {
		t.Fatalf("trim b to 5: removed %d, %v", removed, err)
	}
	if got := listAll(t, s, queue.ListQuery{Hook: "b"}); len(got) != 5 || got[0] != late.Key {
		t.Fatalf("hook b after the trim: %v", got)
	}
	if n := len(segmentFiles(t, dir)); n != len(before)+1 {
		t.Fatalf("%d segments after trimming hook b, %d before: each still holds records of hook a", n, len(before)+1)
	}
	// trimming hook a to nothing empties the oldest segments (its queued
	// event stays, and counts)
	if removed, err := s.Trim(ctx, "a", 0); err != nil || removed != 40 {
		t.Fatalf("trim a to 0: removed %d, %v", removed, err)
	}
	if n := len(segmentFiles(t, dir)); n >= len(before) {
		t.Fatalf("%d segments after trimming, %d before: none was removed", n, len(before))
	}
	clock.Advance(time.Hour)
	if removed, err := s.Purge(ctx, clock.Now()); err != nil || removed != 5 {
		t.Fatalf("purge: removed %d, %v; want the 5 finished records left", removed, err)
	}
	if got := listAll(t, s, queue.ListQuery{}); !slices.Equal(got, []string{queued.Key}) {
		t.Fatalf("after the purge the listing is %v, want only the queued event", got)
	}
	s.reopen()
	if files := segmentFiles(t, dir); len(files) != 0 {
		t.Fatalf("segments left with no record in them: %v", files)
	}
	if _, err := s.Get(ctx, late.Key); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("a purged record: %v", err)
	}
}

// Segments are not synced: after a crash of the machine a group may name
// bytes that never reached the disk. Such a record, and one whose bytes
// were damaged, is listed and read as what its group knows (id, hook,
// status, times) with the reason, and is not replayable; the others read
// whole.
func TestPebbleSegmentDamage(t *testing.T) {
	ctx := context.Background()
	s := newSegStore(t)
	clock, dir := s.clock, s.dir
	var evs []*queue.Event
	for i := range 10 {
		evs = append(evs, syncRecord("a", fmt.Sprintf("ev-%d", i), clock.Now()))
	}
	record(t, s, evs...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Store = nil
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segments: %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	// the last two records lost, one byte of the first one changed
	data = data[:len(data)*8/10]
	data[100] ^= 0xff
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}

	s.open()
	for i, ev := range evs {
		got, err := s.Get(ctx, ev.Key)
		if err != nil {
			t.Fatalf("get %s: %v", ev.Key, err)
		}
		damaged := i == 0 || i >= 8
		if !damaged {
			if err := sameRequest(got, ev, true); err != nil {
				t.Fatalf("an undamaged record: %v", err)
			}
			continue
		}
		if got.ID != ev.ID || got.Hook != "a" || got.Status != queue.StatusDelivered || !got.ReceivedAt.Equal(ev.ReceivedAt) ||
			!got.Truncated || !strings.HasPrefix(got.Reason, "run log record unreadable: ") || got.Body != nil {
			t.Fatalf("damaged record %d reads as %+v", i, got)
		}
		if err := s.Replay(ctx, ev.Key); !errors.Is(err, queue.ErrNotReplayable) {
			t.Fatalf("replay of a damaged record: %v", err)
		}
	}
	if got := listAll(t, s, queue.ListQuery{Hook: "a"}); len(got) != 10 {
		t.Fatalf("the listing has %d of the 10 records", len(got))
	}
	if err := s.Replay(ctx, evs[3].Key); err != nil {
		t.Fatalf("replay of an undamaged record: %v", err)
	}
}

// A replayed record leaves its group for the layout of enqueued events:
// it is listed once, before and after a restart, and delivered with what
// was sent.
func TestPebbleReplayLeavesGroup(t *testing.T) {
	ctx := context.Background()
	s := newSegStore(t)
	clock := s.clock
	a, b := syncRecord("a", "one", clock.Now()), syncRecord("a", "two", clock.Now())
	b.Status = queue.StatusDead
	record(t, s, a, b)
	if err := s.Replay(ctx, b.Key); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if got := listAll(t, s, queue.ListQuery{Hook: "a"}); !slices.Equal(got, []string{b.Key, a.Key}) {
			t.Fatalf("%s: listing %v, want %v", when, got, []string{b.Key, a.Key})
		}
		counts, err := s.Counts(ctx, time.Time{})
		if err != nil || !maps.Equal(counts["a"], map[queue.Status]int{queue.StatusQueued: 1, queue.StatusDelivered: 1}) {
			t.Fatalf("%s: counts %v %v", when, counts, err)
		}
	}
	check("after the replay")
	s.reopen()
	check("after a restart")
	leased, err := s.Lease(ctx, 10, time.Minute)
	if err != nil || len(leased) != 1 || leased[0].Key != b.Key || string(leased[0].Body) != string(b.Body) {
		t.Fatalf("lease after the replay: %+v %v", leased, err)
	}
}

// A group naming a segment that is gone (the machine crashed after a trim
// removed the segment, before the group's change reached the disk) loses
// those records at open: they are neither listed nor counted, and no new
// segment takes the lost one's name.
func TestPebbleSegmentGone(t *testing.T) {
	defer queue.SetSegmentMax(1024)()
	ctx := context.Background()
	s := newSegStore(t)
	clock, dir := s.clock, s.dir
	first := []*queue.Event{syncRecord("a", "first-0", clock.Now()), syncRecord("a", "first-1", clock.Now())}
	record(t, s, first...)
	second := syncRecord("a", "second", clock.Now())
	record(t, s, second)
	files := segmentFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("segments: %v, want one per Record", files)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Store = nil
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	s.open()
	check := func(when string) {
		t.Helper()
		if got := listAll(t, s, queue.ListQuery{}); !slices.Equal(got, []string{second.Key}) {
			t.Fatalf("%s: listing %v, want only %s", when, got, second.Key)
		}
		for _, ev := range first {
			if _, err := s.Get(ctx, ev.Key); !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("%s: a record of the lost segment: %v", when, err)
			}
		}
		counts, err := s.Counts(ctx, time.Time{})
		if err != nil || !maps.Equal(counts["a"], map[queue.Status]int{queue.StatusDelivered: 1}) {
			t.Fatalf("%s: counts %v %v", when, counts, err)
		}
	}
	check("after the open")
	record(t, s, syncRecord("a", "third", clock.Now()))
	if now := segmentFiles(t, dir); len(now) != 2 || now[0] != files[1] || now[1] <= files[0] {
		t.Fatalf("segments %v after a segment %s was lost", now, files[0])
	}
	s.reopen()
	if got := listAll(t, s, queue.ListQuery{}); len(got) != 2 {
		t.Fatalf("after a second open: %v", got)
	}
}

// The active segment is kept while records are trimmed out of it; once
// the next one starts, it goes if nothing is left in it.
func TestPebbleSegmentRemovedAfterRotation(t *testing.T) {
	defer queue.SetSegmentMax(1024)()
	ctx := context.Background()
	s := newSegStore(t)
	clock, dir := s.clock, s.dir
	record(t, s, syncRecord("a", "one", clock.Now()))
	if removed, err := s.Trim(ctx, "a", 0); err != nil || removed != 1 {
		t.Fatalf("trim: %d %v", removed, err)
	}
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("the active segment, empty, is kept: %v", files)
	}
	record(t, s, syncRecord("b", "two", clock.Now()))
	if now := segmentFiles(t, dir); len(now) != 1 || now[0] == files[0] {
		t.Fatalf("segments %v: the empty one (%s) was not removed once the next one started", now, files[0])
	}
}

// A trim removes groups whole when it can (every record of the hook,
// within its limit) and rewrites the others; either way the counts, the
// listing and the segments agree afterwards, records of other hooks and
// newer ones stay, and a segment left with no record goes.
func TestPebbleTrimWholeAndPartialGroups(t *testing.T) {
	defer queue.SetSegmentMax(1024)() // a segment per Record call
	ctx := context.Background()
	s := newSegStore(t)
	clock, dir := s.clock, s.dir
	batch := func(prefix string, hooks []string, statuses []queue.Status) []*queue.Event {
		var evs []*queue.Event
		for i, hook := range hooks {
			ev := syncRecord(hook, fmt.Sprintf("%s-%d", prefix, i), clock.Now())
			ev.Status = statuses[i%len(statuses)]
			evs = append(evs, ev)
			clock.Advance(time.Millisecond)
		}
		record(t, s, evs...)
		return evs
	}
	delivered, dead := queue.StatusDelivered, queue.StatusDead
	// group 1: ten of w, delivered and dead in turn; group 2: w and x
	// mixed; group 3: five of w
	g1 := batch("g1", slices.Repeat([]string{"w"}, 10), []queue.Status{delivered, dead})
	g2 := batch("g2", []string{"w", "x", "w", "x", "w", "x"}, []queue.Status{dead})
	g3 := batch("g3", slices.Repeat([]string{"w"}, 5), []queue.Status{delivered})
	segs := len(segmentFiles(t, dir))
	check := func(step string, wantW []*queue.Event, want map[string]map[queue.Status]int) {
		t.Helper()
		var keys []string
		for _, ev := range wantW {
			keys = append(keys, ev.Key)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		if got := listAll(t, s, queue.ListQuery{Hook: "w"}); !slices.Equal(got, keys) {
			t.Fatalf("%s: hook w lists %v, want %v", step, got, keys)
		}
		counts, err := s.Counts(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for hook, w := range want {
			if !maps.Equal(counts[hook], w) || !maps.Equal(st.Counts[hook], w) {
				t.Fatalf("%s: hook %s counts %v, stats %v, want %v", step, hook, counts[hook], st.Counts[hook], w)
			}
		}
	}
	wOf := func(evs []*queue.Event) []*queue.Event {
		var out []*queue.Event
		for _, ev := range evs {
			if ev.Hook == "w" {
				out = append(out, ev)
			}
		}
		return out
	}
	check("before", append(append(slices.Clone(g1), wOf(g2)...), g3...), map[string]map[queue.Status]int{
		"w": {delivered: 10, dead: 8}, "x": {dead: 3},
	})

	// 18 of w, keep 12: the 6 oldest, part of group 1
	if n, err := s.Trim(ctx, "w", 12); err != nil || n != 6 {
		t.Fatalf("trim w to 12: %d %v", n, err)
	}
	check("trimmed to 12", append(append(slices.Clone(g1[6:]), wOf(g2)...), g3...), map[string]map[queue.Status]int{
		"w": {delivered: 7, dead: 5}, "x": {dead: 3},
	})
	if n := len(segmentFiles(t, dir)); n != segs {
		t.Fatalf("%d segments, %d before: group 1 still has records", n, segs)
	}

	// keep 5: the rest of group 1 goes whole, group 2 loses its w
	if n, err := s.Trim(ctx, "w", 5); err != nil || n != 7 {
		t.Fatalf("trim w to 5: %d %v", n, err)
	}
	check("trimmed to 5", g3, map[string]map[queue.Status]int{
		"w": {delivered: 5}, "x": {dead: 3},
	})
	if n := len(segmentFiles(t, dir)); n != segs-1 {
		t.Fatalf("%d segments, %d before: group 1's segment holds no record and stays", n, segs)
	}
	for _, ev := range wOf(g2) {
		if _, err := s.Get(ctx, ev.Key); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("trimmed record %s: %v", ev.ID, err)
		}
	}
	for _, ev := range g2 {
		if ev.Hook == "x" {
			if got := get(t, s, ev.Key); got.ID != ev.ID || got.Status != dead {
				t.Fatalf("record of x after the trims: %+v", got)
			}
		}
	}

	// the counts hold across a restart, and the last group goes whole
	s.reopen()
	check("reopened", g3, map[string]map[queue.Status]int{"w": {delivered: 5}, "x": {dead: 3}})
	if n, err := s.Trim(ctx, "w", 0); err != nil || n != 5 {
		t.Fatalf("trim w to 0: %d %v", n, err)
	}
	check("trimmed to 0", nil, map[string]map[queue.Status]int{"w": nil, "x": {dead: 3}})
}
