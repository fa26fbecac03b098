package queue

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The run log in the NATS store: records written by Record (no ticket:
// they are finished), listings, trims and counts. Listings, trims and
// counts read the whole bucket, as Stats does.

// Record publishes finished records without waiting for each
// acknowledgement in turn, then waits for all of them.
func (n *NATS) Record(ctx context.Context, evs []*Event) error {
	if err := checkRecords(evs); err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	now := n.now()
	keys := n.keys.next(now, len(evs))
	recs := make([]Event, len(evs))
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	for i, ev := range evs {
		recs[i] = prepareRecord(ev, keys[i], now)
		if err := expandHeaders(&recs[i]); err != nil {
			return err
		}
		val, err := json.Marshal(&natsRecord{Event: recs[i]})
		if err != nil {
			return err
		}
		f, err := n.js.PublishAsync(n.evPre+recs[i].Key, val, jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil {
			return unavailable(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return unavailable(err)
		case <-ctx.Done():
			return unavailable(ctx.Err())
		}
	}
	for i, ev := range evs {
		ev.Key, ev.ReceivedAt, ev.UpdatedAt, ev.DueAt, ev.Gen = recs[i].Key, recs[i].ReceivedAt, recs[i].UpdatedAt, time.Time{}, 0
	}
	return nil
}

// List pages through records newest first (by key), filtered; the cursor
// is the key of the last record of the previous page.
func (n *NATS) List(ctx context.Context, q ListQuery) (ListPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	recs, err := n.scan(ctx, ">")
	if err != nil {
		return ListPage{}, unavailable(err)
	}
	slices.SortFunc(recs, func(a, b *natsRecord) int { return strings.Compare(b.Key, a.Key) })
	f := newListFilter(q)
	page := ListPage{Events: []*Event{}}
	scanned, last := 0, ""
	for _, rec := range recs {
		if q.Cursor != "" && rec.Key >= q.Cursor {
			continue
		}
		if q.Q != "" {
			if scanned == ListScanMax {
				page.Next = last // the next call starts below the last one read
				break
			}
			scanned++
			last = rec.Key
		}
		if !f.meta(&rec.Event) || !f.match(rec.ID, rec.Payload, rec.Body) {
			continue
		}
		if len(page.Events) == q.Limit {
			page.Next = page.Events[q.Limit-1].Key
			break
		}
		ev := rec.Event
		stripDetail(&ev)
		page.Events = append(page.Events, &ev)
	}
	return page, nil
}

// Trim removes the oldest finished records of hook beyond keep. Each is
// purged at the revision that was checked, so a record changed meanwhile
// (replayed) stays; the purge markers go at the next Purge.
func (n *NATS) Trim(ctx context.Context, hook string, keep int) (int, error) {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	recs, err := n.scan(ctx, ">")
	if err != nil {
		return 0, unavailable(err)
	}
	recs = slices.DeleteFunc(recs, func(r *natsRecord) bool { return r.Hook != hook })
	excess := len(recs) - max(keep, 0)
	if excess <= 0 {
		return 0, nil
	}
	slices.SortFunc(recs, func(a, b *natsRecord) int { return strings.Compare(a.Key, b.Key) })
	removed := 0
	for _, rec := range recs {
		if removed == excess {
			break
		}
		if !rec.Status.Finished() {
			continue
		}
		cur, rev, err := n.getRecord(ctx, rec.Key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return removed, unavailable(err)
		}
		if !cur.Status.Finished() {
			continue
		}
		if err := n.events.Purge(ctx, rec.Key, jetstream.LastRevision(rev)); err != nil {
			if isConflict(err) {
				continue // changed since it was read
			}
			return removed, unavailable(err)
		}
		n.trimmed.Store(true)
		removed++
	}
	return removed, nil
}

// Counts counts records by hook and status received at or after since.
func (n *NATS) Counts(ctx context.Context, since time.Time) (map[string]map[Status]int, error) {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	recs, err := n.scan(ctx, ">")
	if err != nil {
		return nil, unavailable(err)
	}
	out := map[string]map[Status]int{}
	for _, rec := range recs {
		if rec.ReceivedAt.Before(since) {
			continue
		}
		if out[rec.Hook] == nil {
			out[rec.Hook] = map[Status]int{}
		}
		out[rec.Hook][rec.Status]++
	}
	return out, nil
}
