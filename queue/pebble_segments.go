package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The records written by Record (sync, gate, rejected and duplicate
// requests, at the rate of requests) keep their bytes out of the LSM
// tree: each Record call appends them to a segment file in the store's
// runlog directory, unsynced, and writes one Pebble key, its group, whose
// value lists the records (key, hook, status, id, times, and where the
// record is in which segment). Pebble keeps what must stay consistent
// (which records exist); a segment holds bytes written once and read
// rarely. Removing a record (trim, purge, replay) rewrites its group; a
// segment is deleted once no group names it.
//
// Writing a record costs one append and a share of one small key. Kept
// in Pebble as keys of its own (record, body, indexes), its bytes would
// go through the WAL, the memtable, a flush and compactions: in the load
// harness, about a sixth of sync mode's throughput.

const (
	segmentDir = "runlog"
	// frameHeader: a frame is its data's length and CRC-32C (4 bytes
	// each), then the data
	frameHeader = 8
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segmentMax: a new segment is started once the active one has this many
// bytes (a variable for tests).
var segmentMax int64 = 64 << 20

// groupEntry is one record of a group.
type groupEntry struct {
	key, hook, id     string
	status            Status
	received, updated int64 // unix nanoseconds
	segment           uint64
	offset, length    int64 // the frame's offset and its data's length
}

func groupKey(first string) []byte { return prefixed(kindGroup, []byte(first)) }

// appendNonNegative appends n, never negative here (times clamped at 0,
// offsets, lengths), as 8 bytes or a uvarint.
func appendNonNegative(b []byte, n int64, fixed bool) []byte {
	u := uint64(max(n, 0)) //nolint:gosec // clamped at 0
	if fixed {
		return binary.BigEndian.AppendUint64(b, u)
	}
	return binary.AppendUvarint(b, u)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendGroup appends the value of a group of entries to b.
func appendGroup(b []byte, entries []groupEntry) []byte {
	for _, e := range entries {
		b = appendString(b, e.key)
		b = appendString(b, e.hook)
		b = appendString(b, e.id)
		b = appendString(b, string(e.status))
		b = appendNonNegative(b, e.received, true)
		b = appendNonNegative(b, e.updated, true)
		b = binary.AppendUvarint(b, e.segment)
		b = appendNonNegative(b, e.offset, false)
		b = appendNonNegative(b, e.length, false)
	}
	return b
}

// groupSize is about the length of the encoding of entries: their
// strings, two fixed times, and room for three uvarints and four string
// lengths.
func groupSize(entries []groupEntry) int {
	n := 0
	for _, e := range entries {
		n += len(e.key) + len(e.hook) + len(e.id) + len(e.status) + 16 + 3*binary.MaxVarintLen64 + 4
	}
	return n
}

var errBadGroup = errors.New("malformed run log group")

// groupView is one entry of a group value as scanGroup reads it: its
// strings are slices of the value, valid while it is.
type groupView struct {
	key, hook, id, status []byte
	received, updated     int64
	segment               uint64
	offset, length        int64
}

// scanGroup calls f with each entry of a group value, in order, without
// copying them, until f returns false.
func scanGroup(v []byte, f func(*groupView) bool) error {
	pos := 0
	num := func() (uint64, bool) {
		n, k := binary.Uvarint(v[pos:])
		if k <= 0 {
			return 0, false
		}
		pos += k
		return n, true
	}
	str := func() ([]byte, bool) {
		n, k, ok := uvarint(v[pos:])
		if !ok || n > len(v)-pos-k {
			return nil, false
		}
		pos += k
		out := v[pos : pos+n] // its capacity tells where it starts (decodeGroup)
		pos += n
		return out, true
	}
	var e groupView
	for pos < len(v) {
		var ok [4]bool
		e.key, ok[0] = str()
		e.hook, ok[1] = str()
		e.id, ok[2] = str()
		e.status, ok[3] = str()
		if ok != [4]bool{true, true, true, true} || len(v)-pos < 16 {
			return errBadGroup
		}
		e.received, e.updated = readInt(v[pos:pos+8]), readInt(v[pos+8:pos+16])
		pos += 16
		seg, ok1 := num()
		off, ok2 := num()
		n, ok3 := num()
		if !ok1 || !ok2 || !ok3 || off > 1<<62 || n > 1<<40 {
			return errBadGroup
		}
		e.segment, e.offset, e.length = seg, int64(off), int64(n)
		if !f(&e) {
			return nil
		}
	}
	return nil
}

// decodeGroup reads a group value. The strings of its entries share one
// copy of v, so a group costs two allocations however many records it
// names.
func decodeGroup(v []byte) ([]groupEntry, error) {
	sv := string(v)
	// a slice of v as the same bytes of sv: it starts where the capacity
	// left to it says
	str := func(b []byte) string {
		start := cap(v) - cap(b)
		return sv[start : start+len(b)]
	}
	out := make([]groupEntry, 0, len(v)/64)
	err := scanGroup(v, func(e *groupView) bool {
		out = append(out, groupEntry{
			key: str(e.key), hook: str(e.hook), id: str(e.id), status: Status(str(e.status)),
			received: e.received, updated: e.updated,
			segment: e.segment, offset: e.offset, length: e.length,
		})
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// segments are the files of the run log's record bytes.
type segments struct {
	dir string

	// mu serializes appends
	mu     sync.Mutex
	active *os.File
	num    uint64 // of the active segment
	size   int64

	// filesMu guards files and refs; a reader holds it shared while it
	// reads, so a segment is not closed under it
	filesMu sync.RWMutex
	files   map[uint64]*os.File // open for reading
	refs    map[uint64]int      // records named by groups
}

func segmentName(n uint64) string { return fmt.Sprintf("%016x.seg", n) }

// openSegments opens the segment files in dir/runlog; refs are counted
// by recover.
func openSegments(dir string) (*segments, error) {
	s := &segments{dir: filepath.Join(dir, segmentDir), files: map[uint64]*os.File{}, refs: map[uint64]int{}}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	for _, de := range names {
		name := de.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 16, 64)
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join(s.dir, name)) //nolint:gosec // a segment in the store's own directory
		if err != nil {
			return nil, errors.Join(err, s.close())
		}
		s.files[n] = f
		s.num = max(s.num, n)
	}
	return s, nil
}

// append writes data at the end of the active segment (a new one when
// it is full) and returns the segment and the offset data starts at.
func (s *segments) append(data []byte) (uint64, int64, error) {
	s.mu.Lock()
	prev, rotated := s.num, false
	if s.active == nil || s.size+int64(len(data)) > segmentMax && s.size > 0 {
		if err := s.rotate(); err != nil {
			s.mu.Unlock()
			return 0, 0, err
		}
		rotated = true
	}
	num, off := s.num, s.size
	n, err := s.active.Write(data)
	s.size += int64(n)
	s.mu.Unlock()
	if rotated {
		// the segment that was active may have lost its last record
		// while it was (and so was kept)
		s.removeIdle(prev)
	}
	if err != nil {
		return 0, 0, err
	}
	return num, off, nil
}

// rotate starts a new segment (under mu). A segment already on disk is
// never appended to: what a crash left at its end is not read again.
func (s *segments) rotate() error {
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			return err
		}
		s.active = nil
	}
	// numbers grow with time too, so that one is not used again after
	// its segment was removed and the store reopened
	n := max(s.num+1, uint64(max(time.Now().UnixNano(), 0)))
	path := filepath.Join(s.dir, segmentName(n))
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // a segment in the store's own directory
	if err != nil {
		return err
	}
	r, err := os.Open(path) //nolint:gosec // the segment just created
	if err != nil {
		_ = w.Close()
		return err
	}
	s.filesMu.Lock()
	s.files[n] = r
	s.filesMu.Unlock()
	s.active, s.num, s.size = w, n, 0
	return nil
}

// read returns the data of the frame of e, checked.
func (s *segments) read(e groupEntry) ([]byte, error) {
	data, errs := s.frames([]groupEntry{e})
	return data[0], errs[0]
}

// frames reads the data of the frames of es, each checked: with one read
// when they are in one segment, as the records of a group are (a group's
// frames were appended together).
func (s *segments) frames(es []groupEntry) ([][]byte, []error) {
	data, errs := make([][]byte, len(es)), make([]error, len(es))
	if len(es) == 0 {
		return data, errs
	}
	lo, hi := es[0].offset, es[0].offset
	for _, e := range es {
		if e.segment != es[0].segment {
			for i, e := range es {
				data[i], errs[i] = s.read(e)
			}
			return data, errs
		}
		lo, hi = min(lo, e.offset), max(hi, e.offset+frameHeader+e.length)
	}
	s.filesMu.RLock()
	f := s.files[es[0].segment]
	var buf []byte
	var err error
	if f == nil {
		// removed since its group was read
		err = fmt.Errorf("segment %d: %w", es[0].segment, ErrNotFound)
	} else {
		buf = make([]byte, hi-lo)
		var n int
		n, err = f.ReadAt(buf, lo)
		buf = buf[:n]
		if errors.Is(err, io.EOF) {
			err = nil // a segment cut short: the frames past its end fail below
		}
	}
	s.filesMu.RUnlock()
	for i, e := range es {
		switch start, end := e.offset-lo, e.offset-lo+frameHeader+e.length; {
		case err != nil:
			errs[i] = fmt.Errorf("record %s: %w", e.key, err)
		case end > int64(len(buf)):
			errs[i] = fmt.Errorf("record %s: %w", e.key, io.ErrUnexpectedEOF)
		default:
			frame := buf[start:end:end]
			if int64(binary.BigEndian.Uint32(frame)) != e.length || binary.BigEndian.Uint32(frame[4:]) != crc32.Checksum(frame[frameHeader:], crcTable) {
				errs[i] = fmt.Errorf("record %s: its bytes in segment %d do not match their checksum", e.key, e.segment)
				continue
			}
			data[i] = frame[frameHeader:]
		}
	}
	return data, errs
}

// ref counts n more (or fewer) records named in segment seg; a segment
// named by none, other than the active one, is removed.
func (s *segments) ref(seg uint64, n int) {
	s.filesMu.Lock()
	s.refs[seg] += n
	gone := s.refs[seg] <= 0
	if gone {
		delete(s.refs, seg)
	}
	s.filesMu.Unlock()
	if gone {
		s.removeIdle(seg)
	}
}

// removeIdle removes segment seg unless it is the active one or named.
func (s *segments) removeIdle(seg uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seg == s.num && s.active != nil {
		return
	}
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	if s.refs[seg] > 0 {
		return
	}
	if f := s.files[seg]; f != nil {
		_ = f.Close()
		delete(s.files, seg)
		_ = os.Remove(filepath.Join(s.dir, segmentName(seg)))
	}
}

// removeUnnamed removes the segments no group names (after recover).
func (s *segments) removeUnnamed() {
	s.filesMu.RLock()
	var idle []uint64
	for n := range s.files {
		if s.refs[n] == 0 {
			idle = append(idle, n)
		}
	}
	s.filesMu.RUnlock()
	for _, n := range idle {
		s.removeIdle(n)
	}
}

func (s *segments) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.active != nil {
		errs = append(errs, s.active.Close())
		s.active = nil
	}
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	for n, f := range s.files {
		errs = append(errs, f.Close())
		delete(s.files, n)
	}
	return errors.Join(errs...)
}

// appendFrame appends the frame of a record written by Record to b: its
// JSON without body, payload and headers, then its detail value (see
// appendDetail), the JSON's length first.
func appendFrame(b []byte, ev *Event, rb *recordBuf) ([]byte, error) {
	rec := &rb.event
	*rec = *ev
	defer func() { *rec = Event{} }() // keeps nothing of ev alive
	stripDetail(rec)
	j, ok := appendRecordJSON(rb.rec[:0], rec, &rb.times)
	if !ok {
		rb.json.Reset()
		if err := rb.enc.Encode(rec); err != nil {
			return b, err
		}
		j = append(j, rb.json.Bytes()[:rb.json.Len()-1]...) // without Encode's newline
	}
	rb.rec = j
	start := len(b)
	b = append(b, make([]byte, frameHeader)...)
	b = binary.AppendUvarint(b, uint64(len(j)))
	b = append(b, j...)
	if d := appendDetail(b, ev); d != nil { // nil: no detail
		b = d
	}
	data := b[start+frameHeader:]
	if len(data) > math.MaxUint32 {
		return b[:start], fmt.Errorf("record %s: %d bytes is more than a segment frame holds", ev.Key, len(data))
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(data))) //nolint:gosec // checked above
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(data, crcTable))
	return b, nil
}

// frameDetail is the detail value in the data of a frame (see
// appendFrame), empty when the record has none.
func frameDetail(data []byte) (detail, error) {
	n, k, ok := uvarint(data)
	if !ok || n > len(data)-k {
		return detail{}, errBadDetail
	}
	if rest := data[k+n:]; len(rest) > 0 {
		return splitDetail(rest)
	}
	return detail{}, nil
}

// decodeFrame reads the data of a frame into an event, with its body,
// payload and headers when withDetail.
func decodeFrame(data []byte, withDetail bool) (*Event, error) {
	n, k, ok := uvarint(data)
	if !ok || n > len(data)-k {
		return nil, errBadDetail
	}
	ev := &Event{}
	if err := json.Unmarshal(data[k:k+n], ev); err != nil {
		return nil, err
	}
	if !withDetail {
		return ev, nil
	}
	d, err := frameDetail(data)
	if err != nil {
		return nil, err
	}
	if d.kept {
		ev.Body = d.body[:len(d.body):len(d.body)]
	}
	if len(d.payload) > 0 {
		ev.Payload = d.payload[:len(d.payload):len(d.payload)]
	}
	if len(d.headers) > 0 {
		if ev.Headers, err = decodeHeaders(d.headers); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// recordGroup writes the records of one Record call: their frames to the
// active segment, then their group, unsynced.
func (p *Pebble) recordGroup(recs []Event) error {
	// one buffer for the frames of every call, grown to the largest batch
	p.groupBufMu.Lock()
	defer p.groupBufMu.Unlock()
	if p.groupBuf == nil {
		p.groupBuf = newRecordBuf()
	}
	rb := p.groupBuf
	data := rb.val[:0]
	entries := slices.Grow(rb.entries[:0], len(recs))[:len(recs)]
	defer func() {
		clear(entries) // the records' strings are not kept alive
		rb.val, rb.entries = data[:0], entries[:0]
	}()
	for i := range recs {
		ev := &recs[i]
		start := len(data)
		var err error
		if data, err = appendFrame(data, ev, rb); err != nil {
			return err
		}
		entries[i] = groupEntry{
			key: ev.Key, hook: ev.Hook, id: ev.ID, status: ev.Status,
			received: max(ev.ReceivedAt.UnixNano(), 0), updated: max(ev.UpdatedAt.UnixNano(), 0),
			offset: int64(start), length: int64(len(data) - start - frameHeader),
		}
	}
	seg, base, err := p.segs.append(data)
	if err != nil {
		return err
	}
	for i := range entries {
		entries[i].segment = seg
		entries[i].offset += base
	}
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	// the batch copies the value
	rb.group = appendGroup(rb.group[:0], entries)
	if err := b.Set(groupKey(recs[0].Key), rb.group, nil); err != nil {
		return err
	}
	// counted before the commit: a trim that sees the group must find the
	// segment named
	p.segs.ref(seg, len(entries))
	if err := p.commit(b, pebble.NoSync); err != nil {
		p.segs.ref(seg, -len(entries))
		return err
	}
	p.groupsAdded(entries)
	return nil
}

// groupsAdded notes new group entries in the per-hook counts of groups.
func (p *Pebble) groupsAdded(entries []groupEntry) {
	p.groupMu.Lock()
	defer p.groupMu.Unlock()
	if p.groupCounts == nil {
		p.groupCounts = map[string]int{}
	}
	for _, e := range entries {
		p.groupCounts[e.hook]++
	}
}

// groupsRemoved notes removed group entries.
func (p *Pebble) groupsRemoved(entries []groupEntry) {
	p.groupMu.Lock()
	defer p.groupMu.Unlock()
	for _, e := range entries {
		p.groupsRemovedLocked(e.hook, 1)
	}
}

// groupsRemovedLocked notes n removed group entries of hook (under
// groupMu).
func (p *Pebble) groupsRemovedLocked(hook string, n int) {
	if p.groupCounts[hook] -= n; p.groupCounts[hook] <= 0 {
		delete(p.groupCounts, hook)
	}
}

func (p *Pebble) hasGroups(hook string) bool {
	p.groupMu.Lock()
	defer p.groupMu.Unlock()
	if hook == "" {
		return len(p.groupCounts) > 0
	}
	return p.groupCounts[hook] > 0
}

// findGrouped returns the group entry of key, and the group's key.
func (p *Pebble) findGrouped(key string) (groupEntry, []byte, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindGroup}, UpperBound: []byte{kindGroup + 1}})
	if err != nil {
		return groupEntry{}, nil, err
	}
	defer func() { _ = it.Close() }()
	// the group holding key is the last one starting at or before it
	if !it.SeekLT(append(groupKey(key), 0)) {
		return groupEntry{}, nil, errors.Join(ErrNotFound, it.Error())
	}
	entries, err := decodeGroup(it.Value())
	if err != nil {
		return groupEntry{}, nil, err
	}
	for _, e := range entries {
		if e.key == key {
			return e, bytes.Clone(it.Key()), nil
		}
	}
	return groupEntry{}, nil, ErrNotFound
}

// readGrouped reads the record of e from its segment. A record whose
// bytes are lost (a segment cut short by a crash of the machine, since
// segments are not synced) or damaged is what its entry knows of it,
// with the reason, truncated (so never replayed); one removed meanwhile
// is ErrNotFound.
func (p *Pebble) readGrouped(e groupEntry, withDetail bool) (*Event, error) {
	data, err := p.segs.read(e)
	return frameEvent(e, data, err, withDetail)
}

// frameEvent is the event of entry e from its frame's data as read (see
// readGrouped).
func frameEvent(e groupEntry, data []byte, err error, withDetail bool) (*Event, error) {
	var ev *Event
	if err == nil {
		ev, err = decodeFrame(data, withDetail)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return &Event{
			Key: e.key, ID: e.id, Hook: e.hook, Status: e.status, Action: -1,
			ReceivedAt: time.Unix(0, e.received), UpdatedAt: time.Unix(0, e.updated),
			Truncated: true, Reason: "run log record unreadable: " + err.Error(),
		}, nil
	}
	ev.Key = e.key
	return ev, nil
}

// getGrouped reads the record of key from its segment.
func (p *Pebble) getGrouped(key string, withDetail bool) (*Event, groupEntry, []byte, error) {
	e, gk, err := p.findGrouped(key)
	if err != nil {
		return nil, e, nil, err
	}
	ev, err := p.readGrouped(e, withDetail)
	return ev, e, gk, err
}

// removeGrouped adds to b the removal of the entries of the group gk
// (entries as read, left as they are) that pick chooses, called once for
// each in order, and returns removed with them appended. The caller
// commits, then calls removedGrouped.
func removeGrouped(b *batch, gk []byte, entries, removed []groupEntry, pick func(groupEntry) bool) ([]groupEntry, error) {
	start := len(removed)
	for _, e := range entries {
		if pick(e) {
			removed = append(removed, e)
		}
	}
	gone := removed[start:]
	switch len(gone) {
	case 0:
		return removed, nil
	case len(entries):
		return removed, b.Delete(gk, nil)
	}
	// the group without them: gone is in the order of entries, and keys
	// are unique in a group
	kept := make([]groupEntry, 0, len(entries)-len(gone))
	for _, e := range entries {
		if len(gone) > 0 && gone[0].key == e.key {
			gone = gone[1:]
			continue
		}
		kept = append(kept, e)
	}
	return removed, b.Set(gk, appendGroup(make([]byte, 0, groupSize(kept)), kept), nil)
}

// removal tallies the records a removal takes out of groups, by hook
// and status and by segment, for what is updated once it is committed
// (removed).
type removal struct {
	n        int
	byStatus map[hookStatus]int
	bySeg    map[uint64]int
}

type hookStatus struct {
	hook   string
	status Status
}

func (r *removal) add(hook string, status Status, seg uint64, n int) {
	if r.byStatus == nil {
		r.byStatus, r.bySeg = map[hookStatus]int{}, map[uint64]int{}
	}
	r.byStatus[hookStatus{hook, status}] += n
	r.bySeg[seg] += n
	r.n += n
}

// addEntries tallies removed group entries.
func (r *removal) addEntries(entries []groupEntry) {
	for _, e := range entries {
		r.add(e.hook, e.status, e.segment, 1)
	}
}

// removed updates counts, group counts and segment references after the
// removal r was committed.
func (p *Pebble) removed(r *removal) {
	byHook := map[string]int{}
	for hs, n := range r.byStatus {
		p.count(hs.hook, hs.status, "", n)
		byHook[hs.hook] += n
	}
	p.groupMu.Lock()
	for hook, n := range byHook {
		p.groupsRemovedLocked(hook, n)
	}
	p.groupMu.Unlock()
	for seg, n := range r.bySeg {
		p.segs.ref(seg, -n)
	}
}

// removedGrouped updates counts and segment references after the
// removal of entries was committed.
func (p *Pebble) removedGrouped(entries []groupEntry) {
	var r removal
	r.addEntries(entries)
	p.removed(&r)
}

// eachGroup calls f with the groups in [from, to) (keys without the kind
// byte; "" unbounded), oldest first, or newest first when reverse, until
// f returns false.
func (p *Pebble) eachGroup(from, to string, reverse bool, f func(gk []byte, entries []groupEntry) (bool, error)) error {
	return p.eachGroupValue(from, to, reverse, func(gk, v []byte) (bool, error) {
		entries, err := decodeGroup(v)
		if err != nil {
			return false, fmt.Errorf("group %s: %w", gk[1:], err)
		}
		return f(gk, entries)
	})
}

// eachGroupValue is eachGroup with each group's value as stored, valid
// until f returns.
func (p *Pebble) eachGroupValue(from, to string, reverse bool, f func(gk, v []byte) (bool, error)) error {
	lower, upper := []byte{kindGroup}, []byte{kindGroup + 1}
	if from != "" {
		lower = groupKey(from)
	}
	if to != "" {
		upper = groupKey(to)
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	step, valid := it.Next, it.First()
	if reverse {
		step, valid = it.Prev, it.Last()
	}
	for ; valid; valid = step() {
		more, err := f(bytes.Clone(it.Key()), it.Value())
		if err != nil || !more {
			_ = it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// groupStart is the first group that may hold a record with a key at or
// above key: the last one starting at or before it.
func (p *Pebble) groupStart(key string) (string, error) {
	if key == "" {
		return "", nil
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindGroup}, UpperBound: []byte{kindGroup + 1}})
	if err != nil {
		return "", err
	}
	start := key
	if it.SeekLT(append(groupKey(key), 0)) {
		start = string(it.Key()[1:])
	}
	return start, errors.Join(it.Error(), it.Close())
}

// recoverGroups counts the records of the groups, notes their lags and
// segment references, seeds the keys, and removes the segments no group
// names.
//
// A group may name a segment that is gone: the machine crashed after a
// trim removed the segment but before the group's change reached the
// disk (groups are not synced). Those records have no bytes left and are
// dropped from their groups here.
func (p *Pebble) recoverGroups() error {
	last := ""
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	lost := 0
	err := p.eachGroup("", "", false, func(gk []byte, entries []groupEntry) (bool, error) {
		// never reuse the number of a segment a group names
		for _, e := range entries {
			p.segs.num = max(p.segs.num, e.segment)
		}
		gone := func(e groupEntry) bool { return p.segs.files[e.segment] == nil }
		removed, err := removeGrouped(b, gk, entries, nil, gone)
		if err != nil {
			return false, err
		}
		lost += len(removed)
		kept := make([]groupEntry, 0, len(entries)-len(removed))
		for _, e := range entries {
			if gone(e) {
				continue
			}
			p.count(e.hook, "", e.status, 1)
			p.segs.refs[e.segment]++
			p.lags.noteKey(e.key, e.received)
			last = max(last, e.key)
			kept = append(kept, e)
		}
		p.groupsAdded(kept)
		return true, nil
	})
	if err != nil {
		return err
	}
	if lost > 0 {
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
	}
	p.keys.seed(last)
	p.segs.removeUnnamed()
	return nil
}

// trimGroups removes up to limit of the oldest records of hook in groups
// with keys below below ("" unbounded).
func (p *Pebble) trimGroups(hook string, limit int, below string) (int, error) {
	p.multi.Lock()
	defer p.multi.Unlock()
	p.groupMu.Lock()
	floor := p.groupFloors[hook]
	p.groupMu.Unlock()
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	// removed: the records of groups removed whole, tallied as they are
	// read, and those of groups rewritten without them (gone)
	var removed removal
	var gone []groupEntry
	var runs []statusRun
	// the new floor: the first group that keeps a record of hook (every
	// group before it has none left)
	newFloor, kept := "", false
	err := p.eachGroupValue(floor, "", false, func(gk, v []byte) (bool, error) {
		room := limit - removed.n - len(gone)
		var whole bool
		var err error
		// most groups go whole: only records of hook, all below below,
		// no more than room
		if runs, whole, err = wholeGroup(v, hook, below, room, runs[:0]); err != nil {
			return false, fmt.Errorf("group %s: %w", gk[1:], err)
		}
		if whole {
			if !kept {
				newFloor = string(gk[1:])
			}
			for _, r := range runs {
				removed.add(hook, Status(r.status), r.segment, r.n)
			}
			return removed.n+len(gone) < limit, b.Delete(gk, nil)
		}
		entries, err := decodeGroup(v)
		if err != nil {
			return false, fmt.Errorf("group %s: %w", gk[1:], err)
		}
		keeps := false
		gone, err = removeGrouped(b, gk, entries, gone, func(e groupEntry) bool {
			if e.hook != hook {
				return false
			}
			if below != "" && e.key >= below || room == 0 {
				keeps = true
				return false
			}
			room--
			return true
		})
		if !kept {
			newFloor, kept = string(gk[1:]), keeps
		}
		last := entries[len(entries)-1].key
		return err == nil && removed.n+len(gone) < limit && (below == "" || last < below), err
	})
	if err != nil || removed.n+len(gone) == 0 {
		return 0, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, err
	}
	removed.addEntries(gone)
	p.removed(&removed)
	if newFloor != "" {
		p.groupMu.Lock()
		if p.groupFloors == nil {
			p.groupFloors = map[string]string{}
		}
		p.groupFloors[hook] = max(p.groupFloors[hook], newFloor)
		p.groupMu.Unlock()
	}
	return removed.n, nil
}

// statusRun is a run of entries of a group with one status in one
// segment; status is a slice of the group's value.
type statusRun struct {
	status  []byte
	segment uint64
	n       int
}

// wholeGroup reports whether a trim of hook removes every record of the
// group value v: all of them records of hook with keys below below (""
// unbounded), no more than room. When it does, runs (appended to) are
// its records by status and segment.
func wholeGroup(v []byte, hook, below string, room int, runs []statusRun) ([]statusRun, bool, error) {
	whole := true
	err := scanGroup(v, func(e *groupView) bool {
		if string(e.hook) != hook || below != "" && string(e.key) >= below || room == 0 {
			whole = false
			return false
		}
		room--
		if k := len(runs) - 1; k >= 0 && runs[k].segment == e.segment && bytes.Equal(runs[k].status, e.status) {
			runs[k].n++
		} else {
			runs = append(runs, statusRun{status: e.status, segment: e.segment, n: 1})
		}
		return true
	})
	return runs, whole && err == nil && len(runs) > 0, err
}

// oldestGrouped is the key of the oldest record of hook in groups, "" if
// none.
func (p *Pebble) oldestGrouped(hook string) (string, error) {
	if !p.hasGroups(hook) {
		return "", nil
	}
	p.groupMu.Lock()
	floor := p.groupFloors[hook]
	p.groupMu.Unlock()
	found := ""
	err := p.eachGroupValue(floor, "", false, func(gk, v []byte) (bool, error) {
		err := scanGroup(v, func(e *groupView) bool {
			if string(e.hook) == hook {
				found = string(e.key)
				return false
			}
			return true
		})
		if err != nil {
			return false, fmt.Errorf("group %s: %w", gk[1:], err)
		}
		return found == "", nil
	})
	return found, err
}

// purgeGroups removes the records of groups changed before t (unix
// nanoseconds), up to limit of them, and reports how many it removed and
// whether there may be more.
func (p *Pebble) purgeGroups(t int64, limit int) (int, bool, error) {
	p.multi.Lock()
	defer p.multi.Unlock()
	p.lags.mu.Lock()
	lagMax := p.lags.max
	p.lags.mu.Unlock()
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	var gone []groupEntry
	more := false
	err := p.eachGroup("", "", false, func(gk []byte, entries []groupEntry) (bool, error) {
		// a record changed at or after its receive time, which is at most
		// lagMax before its key's: a group starting after t+lagMax holds
		// no record changed before t
		if keyTime(string(gk[1:]))-lagMax > t {
			return false, nil
		}
		if len(gone) >= limit {
			more = true
			return false, nil
		}
		var err error
		gone, err = removeGrouped(b, gk, entries, gone, func(e groupEntry) bool { return e.updated < t })
		return err == nil, err
	})
	if err != nil || len(gone) == 0 {
		return 0, false, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, false, err
	}
	p.removedGrouped(gone)
	return len(gone), more, nil
}

// replayGrouped moves the grouped record ev (read with its detail, entry
// e, group gk) to the layout of enqueued records, queued and due now.
func (p *Pebble) replayGrouped(ev *Event, e groupEntry, gk []byte) error {
	entries, err := p.groupEntries(gk)
	if err != nil {
		return err
	}
	b := p.newBatch()
	defer func() { _ = b.Close() }()
	removed, err := removeGrouped(b, gk, entries, nil, func(x groupEntry) bool { return x.key == e.key })
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		return ErrNotFound // removed meanwhile
	}
	from := ev.Status
	if err := p.putNew(b, ev); err != nil {
		return err
	}
	now := p.now()
	if err := p.move(b, ev, StatusQueued, now, now); err != nil {
		return err
	}
	if err := p.commit(b, pebble.Sync); err != nil {
		return err
	}
	// the record is counted again by its new layout: removed here, added
	// queued
	p.groupsRemoved(removed)
	p.segs.ref(e.segment, -1)
	p.count(ev.Hook, from, StatusQueued, 1)
	return nil
}

func (p *Pebble) groupEntries(gk []byte) ([]groupEntry, error) {
	v, err := p.getValue(gk)
	if err != nil {
		return nil, err
	}
	return decodeGroup(v)
}
