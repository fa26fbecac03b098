package queue

import (
	"maps"
	"slices"
	"testing"
)

// FuzzHeaders: any stored bytes decode to headers or an error, never a
// panic, and headers decoded once encode and decode to themselves.
func FuzzHeaders(f *testing.F) {
	f.Add(encodeHeaders(map[string][]string{
		"Content-Type": {"application/json"}, "X-Github-Event": {"push"}, "Authorization": {"[redacted]"},
		"Accept": {"a", "b", ""}, "Empty": {},
	}))
	f.Add([]byte{})
	f.Add([]byte{0x05, 'a'})
	f.Add([]byte{0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeaders(b)
		if err != nil {
			return
		}
		again, err := decodeHeaders(encodeHeaders(h))
		if err != nil {
			t.Fatalf("encoded headers do not decode: %v", err)
		}
		if !maps.EqualFunc(h, again, slices.Equal) {
			t.Fatalf("round trip: %v, then %v", h, again)
		}
	})
}
