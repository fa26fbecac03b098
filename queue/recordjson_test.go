package queue

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendRecordJSON: the hand-written JSON of a record is exactly what
// encoding/json writes, for every field set or not, strings that JSON
// escapes, and times in zones; what it does not write itself it refuses.
func TestAppendRecordJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 18, 4, 5, 123456789, time.UTC)
	zone := time.FixedZone("x", -(3*3600 + 30*60))
	full := Event{
		Key: "0000000000000001", ID: "delivery-1", Hook: "gh", Action: -1, ReceivedAt: at,
		Status: StatusRejected, Attempts: []Attempt{
			{At: at}, {At: at.In(zone), Status: 502, Latency: 1500 * time.Millisecond, Error: `upstream said "no" <b>&</b>`},
		},
		Deferrals: 2, DueAt: at.Add(time.Second), UpdatedAt: at.Add(time.Minute).In(zone), Gen: 7,
		Mode: "sync", Auth: "github", Reason: "not JSON at byte 17\n\t\x01", Inbound: 400,
		Request: "POST /hooks/gh?ünï", RemoteIP: "2001:db8::1", Truncated: true,
	}
	cases := map[string]Event{
		"empty":          {},
		"full":           full,
		"no attempts":    {Key: "k", ID: "i", Hook: "h", Status: StatusPassed, ReceivedAt: at, UpdatedAt: at},
		"unicode":        {ID: "id\u2028\u2029é\xff", Hook: "ho\"ok\\", Reason: "<>&"},
		"empty values":   {Values: map[string]string{}, ReceivedAt: at},
		"local and zero": {ReceivedAt: at.Local(), DueAt: time.Time{}, UpdatedAt: time.Unix(0, 0)},
	}
	for name, ev := range cases {
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		var tc timeCache
		for _, cache := range []*timeCache{nil, &tc, &tc} { // the second with tc set
			got, ok := appendRecordJSON([]byte("prefix"), &ev, cache)
			if !ok || !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Errorf("%s: got %v\n%s\nwant\n%s", name, ok, got, want)
			}
		}
	}
	for name, ev := range map[string]Event{
		"values":    {Values: map[string]string{"a": "b"}},
		"body":      {Body: []byte{}},
		"payload":   {Payload: []byte("x")},
		"headers":   {Headers: map[string][]string{}},
		"year 0-":   {ReceivedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year 10k":  {UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"odd zone":  {UpdatedAt: at.In(time.FixedZone("s", 30))},
		"attempt t": {Attempts: []Attempt{{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	} {
		if got, ok := appendRecordJSON([]byte("prefix"), &ev, &timeCache{}); ok || string(got) != "prefix" {
			t.Errorf("%s: written (%v): %s", name, ok, got)
		}
	}
}

// TestAppendJSONTime: times written by the UTC path and the general one
// are exactly what time.Time.MarshalJSON writes, for any instant of years
// 0 to 9999, any fraction (trailing zeros dropped), in UTC, in Local, and
// in other zones at offset 0 or not; with a cache of the last second or
// without, for times far apart and for times a few milliseconds apart, as
// a batch's are.
func TestAppendJSONTime(t *testing.T) {
	var tc timeCache
	check := func(at time.Time) {
		t.Helper()
		want, err := at.MarshalJSON()
		if err != nil {
			return // the zone moved it out of years 0-9999
		}
		for _, cache := range []*timeCache{nil, &tc} {
			got, ok := appendJSONTime([]byte("x"), at, true, cache)
			if !ok || string(got) != "x"+string(want) {
				t.Fatalf("%v (cache %v): got %s (%v), want %s", at, cache != nil, got, ok, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("zero", 0), time.FixedZone("plus", 5*3600+45*60), time.FixedZone("minus", -8*3600)}
	fractions := []int{0, 1, 10, 100_000_000, 120_000_000, 123_000_000, 123_456_000, 999_999_999}
	for i := range 200_000 {
		ns := fractions[i%len(fractions)]
		if i%3 == 0 {
			ns = rng.IntN(1_000_000_000)
		}
		check(time.Unix(lo+rng.Int64N(hi-lo+1), int64(ns)).In(zones[i%len(zones)]))
	}
	at := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	for range 100_000 {
		at = at.Add(time.Duration(rng.IntN(7_000_000)))
		check(at)
		check(at.In(zones[rng.IntN(len(zones))]))
	}
	for _, at := range []time.Time{time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		for _, cache := range []*timeCache{nil, &tc} {
			if got, ok := appendJSONTime([]byte("x"), at, true, cache); ok || string(got) != "x" {
				t.Errorf("%v: written (%v): %s", at, ok, got)
			}
		}
	}
}
