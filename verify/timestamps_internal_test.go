package verify

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"time"
)

// TestTimestampEdges runs the timestamp check of every preset of the
// registry (those without a timestamp never reach it, so none is skipped
// by a hand-kept list) and every body Check at the int64 edges, and at
// the tolerance ± 1s in the preset's own format.
func TestTimestampEdges(t *testing.T) {
	now := time.Unix(1795400000, 0)
	const tol = 5 * time.Minute
	hostile := []string{
		"99999999999", "999999999999999", "9999999999999999",
		strconv.FormatInt(math.MaxInt64, 10), strconv.FormatInt(math.MinInt64, 10),
		"18446744073709551615", "-1", "-1795400000", "+1795400000", " 1795400000", "1795400000.0", "1e9",
		"9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999+14:00", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
		"2026-11-22T10:00:00", "",
	}
	format := func(p Preset, at time.Time) string {
		switch p.TimestampFormat {
		case "unix_ms":
			return strconv.FormatInt(at.UnixMilli(), 10)
		case "rfc3339":
			return at.UTC().Format(time.RFC3339Nano)
		}
		return strconv.FormatInt(at.Unix(), 10)
	}
	for _, name := range Presets() {
		p := presets[name]
		sc := &scheme{p: p, tolerance: tol, now: func() time.Time { return now }}
		for _, ts := range hostile {
			if err := sc.checkTime(ts); err == nil {
				t.Errorf("%s: timestamp %q accepted", name, ts)
			}
		}
		for _, d := range []time.Duration{tol + time.Second, -tol - time.Second, tol + time.Millisecond, 100 * 365 * 24 * time.Hour} {
			if p.TimestampFormat != "unix_ms" && d%time.Second != 0 {
				continue
			}
			if err := sc.checkTime(format(p, now.Add(d))); !errors.Is(err, ErrTimestamp) {
				t.Errorf("%s: now%+v: %v, want ErrTimestamp", name, d, err)
			}
		}
		for _, d := range []time.Duration{0, tol, -tol, tol - time.Second, -tol + time.Second} {
			if err := sc.checkTime(format(p, now.Add(d))); err != nil {
				t.Errorf("%s: now%+v: %v", name, d, err)
			}
		}
		if p.Check == nil {
			continue
		}
		for _, ts := range hostile[:len(hostile)-6] {
			if err := p.Check([]byte(`{"webhookTimestamp":`+ts+`}`), tol, now); err == nil {
				t.Errorf("%s: body timestamp %s accepted", name, ts)
			}
		}
		for _, ms := range []int64{now.Add(tol + time.Millisecond).UnixMilli(), now.Add(-tol - time.Millisecond).UnixMilli()} {
			if err := p.Check([]byte(`{"webhookTimestamp":`+strconv.FormatInt(ms, 10)+`}`), tol, now); !errors.Is(err, ErrTimestamp) {
				t.Errorf("%s: body timestamp %d: %v, want ErrTimestamp", name, ms, err)
			}
		}
		if err := p.Check([]byte(`{"webhookTimestamp":`+strconv.FormatInt(now.Add(-tol).UnixMilli(), 10)+`}`), tol, now); err != nil {
			t.Errorf("%s: body timestamp at the tolerance: %v", name, err)
		}
	}
}
