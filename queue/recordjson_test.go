package queue

import (
	"bytes"
	"encoding/json"
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
		got, ok := appendRecordJSON([]byte("prefix"), &ev)
		if !ok || !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("%s: got %v\n%s\nwant\n%s", name, ok, got, want)
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
		if got, ok := appendRecordJSON([]byte("prefix"), &ev); ok || string(got) != "prefix" {
			t.Errorf("%s: written (%v): %s", name, ok, got)
		}
	}
}
