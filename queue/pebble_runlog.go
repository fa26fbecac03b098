package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The run log in the Pebble store: records written by Record, listings
// with time bounds and text queries, trims and counts. Each record has an
// entry in the hook index (kindByHook) whose value holds its receive time
// and status, so counts and trims read no record, and listings of a hook
// filter by status and time before reading one.

// lagRange is the range of the differences between the time in a
// record's key (when it was written) and its ReceivedAt, over every
// record written or read at open: a record received in [since, until) has
// its key in [since+min, until+max), which bounds the scans of listings
// and counts.
type lagRange struct {
	mu       sync.Mutex
	min, max int64 // nanoseconds; min <= 0 <= max
}

// keyTime is the time (unix nanoseconds) at the start of a key.
func keyTime(key string) int64 {
	if len(key) < 16 {
		return 0
	}
	n, err := strconv.ParseUint(key[:16], 16, 63)
	if err != nil {
		return 0
	}
	return int64(n)
}

// note notes the lag of a record being stored.
func (l *lagRange) note(ev *Event) {
	l.noteKey(ev.Key, max(ev.ReceivedAt.UnixNano(), 0))
}

// noteKey notes the lag of one record by its key and received time (unix
// nanoseconds).
func (l *lagRange) noteKey(key string, received int64) {
	lag := keyTime(key) - received
	l.mu.Lock()
	defer l.mu.Unlock()
	l.min, l.max = min(l.min, lag), max(l.max, lag)
}

// keyBounds is the range [lo, hi) of keys that holds every record
// received in [since, until); "" is unbounded.
func (l *lagRange) keyBounds(since, until time.Time) (lo, hi string) {
	l.mu.Lock()
	lmin, lmax := l.min, l.max
	l.mu.Unlock()
	if !since.IsZero() {
		lo = keyAt(since.UnixNano() + lmin)
	}
	if !until.IsZero() {
		hi = keyAt(until.UnixNano() + lmax)
	}
	return lo, hi
}

// keyAt is the smallest key of time ns (unix nanoseconds).
func keyAt(ns int64) string { return fmt.Sprintf("%016x", max(ns, 0)) }

// encodeHeaders writes headers compactly (a JSON map costs more than the
// rest of a record): the names in order, each as its length and bytes,
// then the number of its values and each value as its length and bytes.
func encodeHeaders(h map[string][]string) []byte {
	n := 0
	for name, vs := range h {
		n += len(name) + 2*binary.MaxVarintLen16
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen16
		}
	}
	return appendHeaders(make([]byte, 0, n), h)
}

// appendHeaders appends what encodeHeaders returns to b.
func appendHeaders(b []byte, h map[string][]string) []byte {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b = AppendHeader(b, name, h[name])
	}
	return b
}

// AppendHeader appends one header, its name and values, to b in the
// encoding of Event.HeaderBlock (and of stored headers).
func AppendHeader(b []byte, name string, vals []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(vals)))
	for _, v := range vals {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// headerBytes is ev's headers encoded: Headers when set, else
// HeaderBlock.
func headerBytes(ev *Event) []byte {
	if len(ev.Headers) > 0 {
		return encodeHeaders(ev.Headers)
	}
	return ev.HeaderBlock
}

// expandHeaders sets ev's Headers from its HeaderBlock, for a store that
// writes the map.
func expandHeaders(ev *Event) error {
	if ev.Headers != nil || len(ev.HeaderBlock) == 0 {
		return nil
	}
	h, err := decodeHeaders(ev.HeaderBlock)
	if err != nil {
		return fmt.Errorf("event %s of hook %s: %w", ev.ID, ev.Hook, err)
	}
	ev.Headers, ev.HeaderBlock = h, nil
	return nil
}

// uvarint reads a number written by binary.AppendUvarint below 2^35
// (lengths of at most log_body's 1GiB) from the front of b, and how many
// bytes it took.
func uvarint(b []byte) (int, int, bool) {
	n := 0
	for i, c := range b {
		if i == 5 {
			break
		}
		n |= int(c&0x7f) << (7 * i)
		if c < 0x80 {
			return n, i + 1, true
		}
	}
	return 0, 0, false
}

// decodeHeaders reads what encodeHeaders wrote.
func decodeHeaders(b []byte) (map[string][]string, error) {
	bad := errors.New("malformed headers")
	next := func() (string, bool) {
		n, k, ok := uvarint(b)
		if !ok || n > len(b)-k {
			return "", false
		}
		s := string(b[k : k+n])
		b = b[k+n:]
		return s, true
	}
	h := map[string][]string{}
	for len(b) > 0 {
		name, ok := next()
		if !ok {
			return nil, bad
		}
		count, k, ok := uvarint(b)
		if !ok || count > len(b) {
			return nil, bad
		}
		b = b[k:]
		vs := make([]string, 0, count)
		for range count {
			v, ok := next()
			if !ok {
				return nil, bad
			}
			vs = append(vs, v)
		}
		h[name] = vs
	}
	return h, nil
}

// The detail value of a record in a group (see appendFrame): its body,
// payload and headers.

// Flags of a detail value.
const (
	detailBody = 1 << iota // the body is kept (possibly empty)
)

// appendDetail appends the detail value of ev to b, and returns nil when
// ev has no body, payload or headers: a flags byte, the body and the
// payload each as its length and bytes, then the headers as encodeHeaders
// writes them.
func appendDetail(b []byte, ev *Event) []byte {
	if ev.Body == nil && len(ev.Payload) == 0 && len(ev.Headers) == 0 && len(ev.HeaderBlock) == 0 {
		return nil
	}
	var flags byte
	if ev.Body != nil {
		flags |= detailBody
	}
	b = slices.Grow(b, 1+2*binary.MaxVarintLen64+len(ev.Body)+len(ev.Payload))
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(ev.Body)))
	b = append(b, ev.Body...)
	b = binary.AppendUvarint(b, uint64(len(ev.Payload)))
	b = append(b, ev.Payload...)
	if len(ev.Headers) > 0 {
		b = appendHeaders(b, ev.Headers)
	} else {
		b = append(b, ev.HeaderBlock...)
	}
	return b
}

// detail is a detail value split in its parts (slices of it).
type detail struct {
	body, payload, headers []byte
	kept                   bool // the body is kept
}

var errBadDetail = errors.New("malformed body, payload and headers")

func splitDetail(v []byte) (detail, error) {
	var d detail
	if len(v) == 0 {
		return d, errBadDetail
	}
	d.kept = v[0]&detailBody != 0
	v = v[1:]
	part := func() ([]byte, bool) {
		n, k, ok := uvarint(v)
		if !ok || n > len(v)-k {
			return nil, false
		}
		out := v[k : k+n]
		v = v[k+n:]
		return out, true
	}
	var ok1, ok2 bool
	d.body, ok1 = part()
	d.payload, ok2 = part()
	if !ok1 || !ok2 {
		return detail{}, errBadDetail
	}
	d.headers = v
	return d, nil
}

// setDetails adds ev's body (when withBody), payload and headers to b,
// each under its own key.
func setDetails(b *batch, ev *Event, withBody bool) error {
	if withBody {
		if err := b.Set(bodyKey(ev.Key), ev.Body, nil); err != nil {
			return err
		}
	}
	if len(ev.Payload) > 0 {
		if err := b.Set(payloadKey(ev.Key), ev.Payload, nil); err != nil {
			return err
		}
	}
	if h := headerBytes(ev); len(h) > 0 {
		return b.Set(headersKey(ev.Key), h, nil)
	}
	return nil
}

// recordBuf is scratch space for the records of one Record call: the
// batch copies what it is given, so the values and keys of each record
// are built in the same buffers.
type recordBuf struct {
	json     bytes.Buffer
	enc      *json.Encoder
	rec, val []byte
	event    Event // the record being encoded, without its detail
	times    timeCache
	// a batch's group entries and their encoding (recordGroup)
	entries []groupEntry
	group   []byte
}

func newRecordBuf() *recordBuf {
	rb := &recordBuf{}
	rb.enc = json.NewEncoder(&rb.json)
	return rb
}

// putNew adds a new record of ev with its body, payload, headers and
// index entries to b.
func (p *Pebble) putNew(b *batch, ev *Event) error {
	if err := putRecord(b, ev); err != nil {
		return err
	}
	if err := setDetails(b, ev, ev.Body != nil || ev.Status == StatusQueued || ev.Status == StatusDelivering); err != nil {
		return err
	}
	for _, err := range []error{
		b.setIndex(ev),
		b.Set(p.byIDKey(ev), nil, nil),
		b.Set(statusKey(ev), nil, nil),
		b.Set(hookEntry(ev), hookValue(ev), nil),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteRecord adds the removal of the record ev (as stored) with its
// body, payload, headers and index entries to b.
func (p *Pebble) deleteRecord(b *batch, ev *Event) error {
	keys := [][]byte{
		recordKey(ev.Key), p.byIDKey(ev), statusKey(ev), hookEntry(ev),
		indexKey(ev), bodyKey(ev.Key), payloadKey(ev.Key), headersKey(ev.Key),
	}
	for _, k := range keys {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// hookIndexer adds the hook index entries of a store written before the
// index existed, while recover reads its records.
type hookIndexer struct {
	p    *Pebble
	b    *batch
	n    int
	skip bool
}

// indexHooks returns the indexer of recover: one that does nothing when
// the store has the hook index.
func (p *Pebble) indexHooks() (*hookIndexer, error) {
	_, err := p.getValue([]byte{kindLayout})
	if err == nil {
		return &hookIndexer{skip: true}, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return &hookIndexer{p: p, b: p.newBatch()}, nil
}

func (h *hookIndexer) add(ev *Event) error {
	if h.skip {
		return nil
	}
	if err := h.b.Set(hookEntry(ev), hookValue(ev), nil); err != nil {
		return err
	}
	if h.n++; h.n < 10000 {
		return nil
	}
	if err := errors.Join(h.b.Commit(pebble.NoSync), h.b.Close()); err != nil {
		return err
	}
	h.b, h.n = h.p.newBatch(), 0
	return nil
}

// done commits the last entries and marks the layout, synced.
func (h *hookIndexer) done() error {
	if h.skip {
		return nil
	}
	defer func() { _ = h.b.Close() }()
	if err := h.b.Set([]byte{kindLayout}, []byte{1}, nil); err != nil {
		return err
	}
	return h.b.Commit(pebble.Sync)
}

// Record writes finished records in one unsynced batch. It is refused,
// like an accept, while the disk is nearly full.
func (p *Pebble) Record(ctx context.Context, evs []*Event) error {
	if err := checkRecords(evs); err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.checkFree(); err != nil {
		return err
	}
	now := p.now()
	keys := p.keys.next(now, len(evs))
	// the copies are kept from one call to the next, emptied
	rp, _ := recordsPool.Get().(*[]Event)
	if rp == nil {
		rp = new([]Event)
	}
	recs := slices.Grow((*rp)[:0], len(evs))[:len(evs)]
	defer func() {
		clear(recs)
		*rp = recs[:0]
		recordsPool.Put(rp)
	}()
	for i, ev := range evs {
		recs[i] = prepareRecord(ev, keys[i], now)
		// noted first: a listing that finds the group bounds its scan
		// by their lags
		p.lags.note(&recs[i])
	}
	if err := p.recordGroup(recs); err != nil {
		return unavailable(err)
	}
	for i, ev := range evs {
		p.count(ev.Hook, "", ev.Status, 1)
		ev.Key, ev.ReceivedAt, ev.UpdatedAt, ev.DueAt, ev.Gen = recs[i].Key, recs[i].ReceivedAt, recs[i].UpdatedAt, time.Time{}, 0
	}
	return nil
}

// recordsPool holds the copies Record makes of its records.
var recordsPool sync.Pool

// total is the number of records of a hook, from the counts in memory.
func (p *Pebble) total(hook string) int {
	p.countsMu.Lock()
	defer p.countsMu.Unlock()
	n := 0
	for _, c := range p.counts[hook] {
		n += c
	}
	return n
}

// Trim removes the oldest finished records of hook while it has more
// than keep, in unsynced batches of up to 1000. The hook index is read
// from a floor below which the hook has no finished record left, so
// repeated trims do not step again over the deletions of earlier ones.
func (p *Pebble) Trim(ctx context.Context, hook string, keep int) (int, error) {
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		excess := p.total(hook) - max(keep, 0)
		if excess <= 0 {
			return removed, nil
		}
		limit := min(excess, 1000)
		// oldest first across both layouts: the records in the hook
		// index older than every grouped one, else the grouped ones older
		// than every finished one in the index
		oldest, err := p.oldestGrouped(hook)
		if err != nil {
			return removed, unavailable(err)
		}
		n, next, err := p.trimSome(hook, limit, oldest)
		removed += n
		if err != nil {
			return removed, unavailable(err)
		}
		if n > 0 {
			continue
		}
		if oldest == "" {
			return removed, nil
		}
		if n, err = p.trimGroups(hook, limit, next); err != nil {
			return removed + n, unavailable(err)
		}
		removed += n
		if n == 0 {
			return removed, nil
		}
	}
}

// trimSome removes up to limit of the oldest finished records of hook in
// the hook index with keys below below ("" unbounded); when it removes
// none, next is the first finished one at or above below ("" if none).
func (p *Pebble) trimSome(hook string, limit int, below string) (removed int, next string, err error) {
	p.multi.Lock()
	defer p.multi.Unlock()
	prefix := hookPrefix(hook)
	p.trimMu.Lock()
	floor := p.trimFloors[hook]
	p.trimMu.Unlock()
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: append(bytes.Clone(prefix), floor...), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, "", err
	}
	var keys []string
	skipped := ""
	for it.First(); it.Valid() && len(keys) < limit; it.Next() {
		key, v := string(it.Key()[len(prefix):]), it.Value()
		_, status, ok := splitHookValue(v)
		if below != "" && key >= below && ok && status.Finished() {
			next = key
			break
		}
		switch {
		case ok && status.Finished():
			keys = append(keys, key)
		case skipped == "":
			skipped = key
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, "", err
	}
	if len(keys) == 0 {
		p.raiseTrimFloor(hook, skipped)
		return 0, next, nil
	}
	unlock := p.lockRecords(keys)
	defer unlock()
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	var gone []*Event
	for _, key := range keys {
		ev, err := p.get(key)
		if errors.Is(err, ErrNotFound) {
			// an entry left without its record: removed with it
			if err := b.Delete(append(bytes.Clone(prefix), key...), nil); err != nil {
				return 0, "", err
			}
			continue
		}
		if err != nil {
			return 0, "", err
		}
		if !ev.Status.Finished() {
			// replayed since the index was read
			if skipped == "" || key < skipped {
				skipped = key
			}
			continue
		}
		if err := p.deleteRecord(b, ev); err != nil {
			return 0, "", err
		}
		gone = append(gone, ev)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, "", err
	}
	for _, ev := range gone {
		p.count(ev.Hook, ev.Status, "", 1)
	}
	if skipped == "" {
		skipped = keys[len(keys)-1]
	}
	p.raiseTrimFloor(hook, skipped)
	return len(gone), "", nil
}

// raiseTrimFloor notes that hook has no finished record below key.
func (p *Pebble) raiseTrimFloor(hook, key string) {
	if key == "" {
		return
	}
	p.trimMu.Lock()
	defer p.trimMu.Unlock()
	if p.trimFloors == nil {
		p.trimFloors = map[string]string{}
	}
	if key > p.trimFloors[hook] {
		p.trimFloors[hook] = key
	}
}

// Counts reads the hook index of each hook from the first key that may
// hold a record received at since.
func (p *Pebble) Counts(ctx context.Context, since time.Time) (map[string]map[Status]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.countsMu.Lock()
	hooks := slices.Collect(maps.Keys(p.counts))
	p.countsMu.Unlock()
	lo, _ := p.lags.keyBounds(since, time.Time{})
	from := max(since.UnixNano(), 0)
	out := map[string]map[Status]int{}
	for _, hook := range hooks {
		prefix := hookPrefix(hook)
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: append(bytes.Clone(prefix), lo...), UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, unavailable(err)
		}
		for it.First(); it.Valid(); it.Next() {
			at, status, ok := splitHookValue(it.Value())
			if !ok || !since.IsZero() && at < from {
				continue
			}
			m := out[hook]
			if m == nil {
				m = map[Status]int{}
				out[hook] = m
			}
			m[status]++
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, unavailable(err)
		}
	}
	start, err := p.groupStart(lo)
	if err != nil {
		return nil, unavailable(err)
	}
	err = p.eachGroup(start, "", false, func(_ []byte, entries []groupEntry) (bool, error) {
		for _, e := range entries {
			if !since.IsZero() && e.received < from {
				continue
			}
			m := out[e.hook]
			if m == nil {
				m = map[Status]int{}
				out[e.hook] = m
			}
			m[e.status]++
		}
		return true, nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// peek calls f with the value of key, if there is one, without copying
// it.
func (p *Pebble) peek(key []byte, f func([]byte) bool) (bool, error) {
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok := f(v)
	return ok, closer.Close()
}

// follower reads the values of one kind of key (payloads, bodies) for a
// scan that visits record keys going down: one iterator moved along with
// the scan instead of a point read per record.
type follower struct {
	p       *Pebble
	kind    byte
	lo, hi  string
	it      *pebble.Iterator
	valid   bool
	started bool
}

// at calls f with the value for key, if there is one.
func (w *follower) at(key string, f func([]byte) bool) (bool, error) {
	if w.it == nil {
		prefix := []byte{w.kind}
		upper := prefixEnd(prefix)
		if w.hi != "" {
			upper = prefixed(w.kind, []byte(w.hi))
		}
		it, err := w.p.db.NewIter(&pebble.IterOptions{LowerBound: prefixed(w.kind, []byte(w.lo)), UpperBound: upper})
		if err != nil {
			return false, err
		}
		w.it = it
	}
	target := prefixed(w.kind, []byte(key))
	// a few steps back cover the next record; a longer way is a seek
	steps := 0
	for w.started && w.valid && bytes.Compare(w.it.Key(), target) > 0 && steps < 8 {
		w.valid = w.it.Prev()
		steps++
	}
	if !w.started || w.valid && bytes.Compare(w.it.Key(), target) > 0 {
		w.valid, w.started = w.it.SeekLT(append(target, 0)), true
	}
	if w.valid && bytes.Equal(w.it.Key(), target) {
		return f(w.it.Value()), nil
	}
	return false, w.it.Error()
}

func (w *follower) close() error {
	if w.it == nil {
		return nil
	}
	return w.it.Close()
}

// textMatcher tells whether Q is in the id, payload or body of the
// records a listing visits.
type textMatcher struct {
	f              *listFilter
	payload, bodys follower
}

func (p *Pebble) newTextMatcher(f *listFilter, lo, hi string) *textMatcher {
	return &textMatcher{
		f:       f,
		payload: follower{p: p, kind: kindPayload, lo: lo, hi: hi},
		bodys:   follower{p: p, kind: kindBody, lo: lo, hi: hi},
	}
}

func (m *textMatcher) match(ev *Event) (bool, error) {
	if m.f.match(ev.ID) {
		return true, nil
	}
	return m.inBodies(ev.Key)
}

// inBodies reports whether Q is in the payload or body of key.
func (m *textMatcher) inBodies(key string) (bool, error) {
	for _, w := range []*follower{&m.payload, &m.bodys} {
		ok, err := w.at(key, m.f.contains)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (m *textMatcher) close() error {
	return errors.Join(m.payload.close(), m.bodys.close())
}

// List pages through records newest first, filtered: through the index
// of an id, else of a hook (whose values hold the status and receive
// time), else of a status, else all records; every scan is bounded by the
// keys that can hold records received in [Since, Until), and a text query
// reads at most ListScanMax records.
func (p *Pebble) List(ctx context.Context, q ListQuery) (ListPage, error) {
	if err := ctx.Err(); err != nil {
		return ListPage{}, err
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	lo, hi := p.lags.keyBounds(q.Since, q.Until)
	if q.Cursor != "" && (hi == "" || q.Cursor < hi) {
		hi = q.Cursor
	}
	if hi != "" && hi <= lo {
		return ListPage{Events: []*Event{}}, nil
	}
	f := newListFilter(q)
	indexed, err := p.listIndexed(q, f, lo, hi)
	if err != nil || !p.hasGroups(q.Hook) {
		return indexed, err
	}
	grouped, err := p.listGroups(q, f, lo, hi)
	if err != nil {
		return ListPage{}, unavailable(err)
	}
	return mergePages(indexed, grouped, q.Limit), nil
}

// mergePages merges two pages of one query over records in disjoint
// sets: each is complete down to its Next, so the merge is complete down
// to the higher of them, and cut at limit.
func mergePages(a, b ListPage, limit int) ListPage {
	floor := max(a.Next, b.Next)
	evs := make([]*Event, 0, len(a.Events)+len(b.Events))
	for _, ev := range slices.Concat(a.Events, b.Events) {
		if floor == "" || ev.Key >= floor {
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(x, y *Event) int { return strings.Compare(y.Key, x.Key) })
	if len(evs) > limit {
		return ListPage{Events: evs[:limit], Next: evs[limit-1].Key}
	}
	return ListPage{Events: evs, Next: floor}
}

// listGroups is List over the records of groups, newest first. The
// entries of a group are filtered before any record is read, and the
// records a group still needs are read at once (they are side by side in
// one segment); a text query looks in the payload and body without
// decoding the record.
func (p *Pebble) listGroups(q ListQuery, f *listFilter, lo, hi string) (ListPage, error) {
	page := ListPage{Events: []*Event{}}
	start, err := p.groupStart(lo)
	if err != nil {
		return page, err
	}
	since, until := max(q.Since.UnixNano(), 0), max(q.Until.UnixNano(), 0)
	scanned, last := 0, ""
	var cands []groupEntry
	err = p.eachGroup(start, hi, true, func(_ []byte, entries []groupEntry) (bool, error) {
		// the group's matching entries, newest first, as many as the page
		// or the text scan can still take
		room := q.Limit + 1 - len(page.Events)
		if q.Q != "" {
			room = ListScanMax - scanned + 1
		}
		cands = cands[:0]
		for i := len(entries) - 1; i >= 0 && len(cands) < room; i-- {
			e := entries[i]
			if e.key < lo || hi != "" && e.key >= hi ||
				q.Hook != "" && e.hook != q.Hook || q.Status != "" && e.status != q.Status || q.ID != "" && e.id != q.ID ||
				!q.Since.IsZero() && e.received < since || !q.Until.IsZero() && e.received >= until {
				continue
			}
			cands = append(cands, e)
		}
		if len(cands) == 0 {
			return true, nil
		}
		data, errs := p.segs.frames(cands)
		for i, e := range cands {
			if q.Q != "" {
				if scanned == ListScanMax {
					page.Next = last // the next call starts below the last one read
					return false, nil
				}
				scanned++
				last = e.key
				if !f.match(e.id) {
					if errs[i] != nil {
						continue // nothing to search
					}
					d, err := frameDetail(data[i])
					if err != nil || !f.contains(d.payload) && !f.contains(d.body) {
						continue
					}
				}
			}
			if len(page.Events) == q.Limit {
				page.Next = page.Events[q.Limit-1].Key
				return false, nil
			}
			ev, err := frameEvent(e, data[i], errs[i], false)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return false, err
			}
			stripDetail(ev)
			page.Events = append(page.Events, ev)
		}
		return true, nil
	})
	return page, err
}

// listIndexed is List over the records with index entries.
func (p *Pebble) listIndexed(q ListQuery, f *listFilter, lo, hi string) (ListPage, error) {
	page := ListPage{Events: []*Event{}}
	text := p.newTextMatcher(f, lo, hi)
	defer func() { _ = text.close() }()
	scanned, last := 0, ""
	// visit handles the record of key (raw: its stored value, when already
	// read) and reports false once the listing is done.
	visit := func(key string, raw []byte) (bool, error) {
		if q.Q != "" {
			if scanned == ListScanMax {
				page.Next = last // the next call starts below the last one read
				return false, nil
			}
			scanned++
			last = key
		}
		if raw == nil {
			var err error
			if raw, err = p.getValue(recordKey(key)); errors.Is(err, ErrNotFound) {
				return true, nil
			} else if err != nil {
				return false, err
			}
		}
		found := false
		if q.Q != "" && f.literal && !f.contains(raw) {
			// Q is not in the stored record, so not in its id: decoding
			// it is needed only if the payload or body holds Q
			ok, err := text.inBodies(key)
			if err != nil || !ok {
				return err == nil, err
			}
			found = true
		}
		ev := &Event{}
		if err := json.Unmarshal(raw, ev); err != nil {
			return false, fmt.Errorf("record %s: %w", key, err)
		}
		if !f.meta(ev) {
			return true, nil
		}
		if q.Q != "" && !found {
			if ok, err := text.match(ev); err != nil || !ok {
				return err == nil, err
			}
		}
		if len(page.Events) == q.Limit {
			page.Next = page.Events[q.Limit-1].Key
			return false, nil
		}
		stripDetail(ev)
		page.Events = append(page.Events, ev)
		return true, nil
	}
	if q.ID != "" {
		prefix := prefixed(kindByID, idHook(q.ID, q.Hook))
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return ListPage{}, unavailable(err)
		}
		var keys []string
		for it.First(); it.Valid(); it.Next() {
			if k := it.Key(); len(k) >= len(prefix)+16 {
				if key := string(k[len(k)-16:]); key >= lo && (hi == "" || key < hi) {
					keys = append(keys, key)
				}
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return ListPage{}, unavailable(err)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		for _, key := range keys {
			more, err := visit(key, nil)
			if err != nil {
				return ListPage{}, unavailable(err)
			}
			if !more {
				break
			}
		}
		return page, nil
	}
	var prefix []byte
	var pre func(v []byte) bool // a filter on index values
	decode := false
	switch {
	case q.Hook != "":
		prefix = hookPrefix(q.Hook)
		since, until := max(q.Since.UnixNano(), 0), max(q.Until.UnixNano(), 0)
		pre = func(v []byte) bool {
			if len(v) < 8 {
				return true
			}
			at := readInt(v[:8])
			_, status, _ := splitHookValue(v)
			return (q.Status == "" || status == q.Status) &&
				(q.Since.IsZero() || at >= since) && (q.Until.IsZero() || at < until)
		}
	case q.Status != "":
		prefix = prefixed(kindStatus, []byte(q.Status), []byte{0})
	default:
		prefix, decode = []byte{kindRecord}, true
	}
	upper := prefixEnd(prefix)
	if hi != "" {
		upper = append(bytes.Clone(prefix), hi...)
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: append(bytes.Clone(prefix), lo...), UpperBound: upper})
	if err != nil {
		return ListPage{}, unavailable(err)
	}
	for it.Last(); it.Valid(); it.Prev() {
		if pre != nil && !pre(it.Value()) {
			continue
		}
		key := string(it.Key()[len(prefix):])
		var raw []byte
		if decode {
			raw = it.Value()
		}
		more, err := visit(key, raw)
		if err != nil {
			_ = it.Close()
			return ListPage{}, unavailable(err)
		}
		if !more {
			break
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return ListPage{}, unavailable(err)
	}
	return page, nil
}
