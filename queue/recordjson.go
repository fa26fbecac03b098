package queue

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecordJSON appends the JSON of a record stripped of its body,
// payload and headers (see stripDetail), byte for byte what json.Marshal
// writes, without its reflection: Record encodes one per request. It
// reports false, having appended nothing, for what it does not write
// itself (mapped values, times json refuses); the caller then uses
// encoding/json.
//
// tc, when not nil, keeps the text of the last second written: the
// records of a batch were received within a few seconds.
func appendRecordJSON(b []byte, ev *Event, tc *timeCache) ([]byte, bool) {
	if len(ev.Values) > 0 || ev.Body != nil || ev.Payload != nil || ev.Headers != nil {
		return b, false
	}
	start := len(b)
	ok := true
	b = append(b, `{"key":`...)
	b = appendJSONString(b, ev.Key)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"hook":`...)
	b = appendJSONString(b, ev.Hook)
	b = append(b, `,"action":`...)
	b = strconv.AppendInt(b, int64(ev.Action), 10)
	b = append(b, `,"body":null,"received_at":`...)
	b, ok = appendJSONTime(b, ev.ReceivedAt, ok, tc)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(ev.Status))
	if len(ev.Attempts) > 0 {
		b = append(b, `,"attempts":[`...)
		for i, a := range ev.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"at":`...)
			b, ok = appendJSONTime(b, a.At, ok, tc)
			if a.Status != 0 {
				b = append(b, `,"status":`...)
				b = strconv.AppendInt(b, int64(a.Status), 10)
			}
			if a.Latency != 0 {
				b = append(b, `,"latency_ns":`...)
				b = strconv.AppendInt(b, int64(a.Latency), 10)
			}
			if a.Error != "" {
				b = append(b, `,"error":`...)
				b = appendJSONString(b, a.Error)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if ev.Deferrals != 0 {
		b = append(b, `,"deferrals":`...)
		b = strconv.AppendInt(b, int64(ev.Deferrals), 10)
	}
	if !ev.DueAt.IsZero() {
		b = append(b, `,"due_at":`...)
		b, ok = appendJSONTime(b, ev.DueAt, ok, tc)
	}
	b = append(b, `,"updated_at":`...)
	b, ok = appendJSONTime(b, ev.UpdatedAt, ok, tc)
	if ev.Gen != 0 {
		b = append(b, `,"gen":`...)
		b = strconv.AppendUint(b, ev.Gen, 10)
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"mode":`, ev.Mode}, {`,"auth":`, ev.Auth}, {`,"reason":`, ev.Reason},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendJSONString(b, f.v)
		}
	}
	if ev.Inbound != 0 {
		b = append(b, `,"inbound":`...)
		b = strconv.AppendInt(b, int64(ev.Inbound), 10)
	}
	for _, f := range [...]struct{ name, v string }{{`,"request":`, ev.Request}, {`,"remote_ip":`, ev.RemoteIP}} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendJSONString(b, f.v)
		}
	}
	if ev.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	b = append(b, '}')
	if !ok {
		return b[:start], false
	}
	return b, true
}

// appendJSONTime appends t as time.Time.MarshalJSON writes it; ok becomes
// false for a time it refuses.
func appendJSONTime(b []byte, t time.Time, ok bool, tc *timeCache) ([]byte, bool) {
	_, off := t.Zone()
	if off == 0 {
		return appendJSONTimeUTC(b, t.UTC(), ok, tc)
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

// timeCache is the text of one whole second in UTC, as
// appendJSONTimeUTC writes it.
type timeCache struct {
	sec  int64
	text [len("2006-01-02T15:04:05")]byte
	set  bool
}

// appendJSONTimeUTC is appendJSONTime for a time in UTC, the zone of
// every time the recorder writes, without AppendFormat's general layout
// walk: RFC 3339 with the fraction's trailing zeros dropped, and Z. The
// date and clock are taken from tc when it holds t's second, and kept
// there when tc is not nil.
func appendJSONTimeUTC(b []byte, t time.Time, ok bool, tc *timeCache) ([]byte, bool) {
	b = append(b, '"')
	if sec := t.Unix(); tc != nil && tc.set && tc.sec == sec {
		b = append(b, tc.text[:]...)
	} else {
		year, month, day := t.Date()
		if year < 0 || year > 9999 {
			return b[:len(b)-1], false
		}
		hour, minute, second := t.Clock()
		start := len(b)
		b = appendDigits(b, year, 4)
		b = append(b, '-')
		b = appendDigits(b, int(month), 2)
		b = append(b, '-')
		b = appendDigits(b, day, 2)
		b = append(b, 'T')
		b = appendDigits(b, hour, 2)
		b = append(b, ':')
		b = appendDigits(b, minute, 2)
		b = append(b, ':')
		b = appendDigits(b, second, 2)
		if tc != nil {
			tc.sec, tc.set = sec, true
			copy(tc.text[:], b[start:])
		}
	}
	if ns := t.Nanosecond(); ns != 0 {
		width := 9
		for ns%10 == 0 {
			ns /= 10
			width--
		}
		b = append(b, '.')
		b = appendDigits(b, ns, width)
	}
	return append(b, 'Z', '"'), ok
}

// appendDigits appends n (0 <= n < 10^width) in width decimal digits.
func appendDigits(b []byte, n, width int) []byte {
	b = append(b, "000000000"[:width]...)
	for i := len(b) - 1; n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// appendJSONString appends s as encoding/json writes a string: plain
// ASCII as is, anything else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				q = []byte(`""`)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
