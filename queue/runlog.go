package queue

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// checkRecords checks the records of one Record: each with a hook and a
// finished status.
func checkRecords(evs []*Event) error {
	for _, ev := range evs {
		if ev == nil || ev.Hook == "" {
			return errors.New("record needs a hook")
		}
		if ev.Status == "" || !ev.Status.Finished() {
			return fmt.Errorf("record %s of hook %s: status %q is not a finished one", ev.ID, ev.Hook, ev.Status)
		}
	}
	return nil
}

// prepareRecord is the stored form of a recorded event: its key, times
// set, no lease.
func prepareRecord(ev *Event, key string, now time.Time) Event {
	rec := *ev
	rec.Key, rec.DueAt, rec.Gen = key, time.Time{}, 0
	if rec.ReceivedAt.IsZero() {
		rec.ReceivedAt = now
	}
	if rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = now
	}
	return rec
}

// listFilter applies the filters of a ListQuery to records.
type listFilter struct {
	q ListQuery
	// text is Q as bytes; ascii says it is all ASCII (compared byte by
	// byte, folding case), else records are lowered to compare.
	text  []byte
	lower string
	ascii bool
	// literal: Q is ASCII without a character that JSON escapes in a
	// string (quote, backslash, <, >, &, controls), so a string holding Q
	// holds it as written once encoded.
	literal bool
}

func newListFilter(q ListQuery) *listFilter {
	f := &listFilter{q: q, text: []byte(q.Q), lower: strings.ToLower(q.Q), ascii: true}
	for _, c := range f.text {
		if c >= utf8.RuneSelf {
			f.ascii = false
			break
		}
	}
	f.literal = f.ascii && !strings.ContainsFunc(q.Q, func(r rune) bool { return r < 0x20 || strings.ContainsRune(`"\<>&`, r) })
	return f
}

// meta reports whether ev passes the filters other than Q.
func (f *listFilter) meta(ev *Event) bool {
	q := f.q
	return (q.Hook == "" || ev.Hook == q.Hook) && (q.Status == "" || ev.Status == q.Status) && (q.ID == "" || ev.ID == q.ID) &&
		(q.Since.IsZero() || !ev.ReceivedAt.Before(q.Since)) && (q.Until.IsZero() || ev.ReceivedAt.Before(q.Until))
}

// text reports whether Q is in the id or in one of the texts.
func (f *listFilter) match(id string, texts ...[]byte) bool {
	if f.q.Q == "" {
		return true
	}
	if f.contains([]byte(id)) {
		return true
	}
	for _, t := range texts {
		if f.contains(t) {
			return true
		}
	}
	return false
}

// contains reports whether s holds Q, ignoring case.
func (f *listFilter) contains(s []byte) bool {
	q := f.text
	if len(q) == 0 {
		return true
	}
	if !f.ascii {
		return strings.Contains(strings.ToLower(string(s)), f.lower)
	}
	if len(s) < len(q) {
		return false
	}
	lo, up := lowerASCII(q[0]), upperASCII(q[0])
	for i := 0; i <= len(s)-len(q); {
		j := bytes.IndexByte(s[i:len(s)-len(q)+1], lo)
		if lo != up {
			if k := bytes.IndexByte(s[i:len(s)-len(q)+1], up); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return false
		}
		i += j
		if equalFoldASCII(s[i:i+len(q)], q) {
			return true
		}
		i++
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// equalFoldASCII compares a and b (of one length) folding ASCII case.
func equalFoldASCII(a, b []byte) bool {
	for i := range a {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// stripDetail removes what listings leave out: the bodies and headers.
func stripDetail(ev *Event) {
	ev.Body, ev.Payload, ev.Headers, ev.HeaderBlock = nil, nil, nil, nil
}
