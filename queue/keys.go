package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// keyGen makes record keys: 16 hex digits of a number that grows with the
// store's clock (unix nanoseconds, or one more than the last key when the
// clock has not moved or went back), then an optional fixed suffix that
// tells instances apart. Keys are unique, of one width, and sort in
// enqueue order; nothing of the event id is in them.
type keyGen struct {
	mu     sync.Mutex
	last   uint64
	suffix string
}

// seed makes the next keys greater than key (the greatest one stored).
func (g *keyGen) seed(key string) {
	if len(key) < 16 {
		return
	}
	if n, err := strconv.ParseUint(key[:16], 16, 64); err == nil {
		g.mu.Lock()
		g.last = max(g.last, n)
		g.mu.Unlock()
	}
}

// next returns n consecutive keys.
func (g *keyGen) next(now time.Time, n int) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, n)
	var b []byte
	for i := range out {
		g.last = max(g.last+1, uint64(max(now.UnixNano(), 0)))
		b = appendKey(b[:0], g.last, g.suffix)
		out[i] = string(b)
	}
	return out
}

// appendKey appends the key of number n: 16 hex digits, then suffix.
func appendKey(b []byte, n uint64, suffix string) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[n>>uint(shift)&0xf])
	}
	return append(b, suffix...)
}

// checkBatch checks the records of one Enqueue: at least one, all with the
// same non-empty id and hook.
func checkBatch(evs []*Event) error {
	if len(evs) == 0 {
		return errors.New("no event to enqueue")
	}
	for _, ev := range evs {
		if ev == nil || ev.ID == "" || ev.Hook == "" {
			return errors.New("event needs an id and a hook")
		}
		if ev.ID != evs[0].ID || ev.Hook != evs[0].Hook {
			return errors.New("the records of one enqueue share their id and hook")
		}
	}
	return nil
}

// idHook encodes (id, hook) unambiguously whatever bytes they hold: each
// is preceded by its length. A prefix of the encoding with the id alone
// selects every hook's records of that id.
func idHook(id, hook string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(id)))
	b = append(b, id...)
	if hook == "" {
		return b
	}
	b = binary.AppendUvarint(b, uint64(len(hook)))
	return append(b, hook...)
}

// unixBytes is t as 8 big-endian bytes of unix nanoseconds (clamped at 0),
// so index keys sort by time.
func unixBytes(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(max(t.UnixNano(), 0)))
}

// readInt reads the 8-byte big-endian numbers this package writes: times
// in unix nanoseconds (clamped at 0) and positive counts, so they fit
// int64.
func readInt(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b)) //nolint:gosec // written from non-negative int64 values, see above
}

func final(s Status) bool { return s.Finished() }

// checkLease reports ErrStaleLease unless l is the record's current lease.
func checkLease(ev *Event, l Lease) error {
	if ev.Key != l.Key || ev.Status != StatusDelivering || ev.Gen != l.Gen {
		return ErrStaleLease
	}
	return nil
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{ErrDuplicate, ErrNotFound, ErrNotReplayable, ErrStaleLease, ErrUnavailable} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
