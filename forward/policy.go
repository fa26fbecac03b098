// Package forward delivers events to upstream HTTP actions: request
// building, the retry policy, outbound signing and a pooled client.
package forward

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy defaults.
const (
	DefaultBase = 500 * time.Millisecond
	DefaultMax  = 30 * time.Second
)

// StatusSet is a set of HTTP statuses, given as "429" or as a class "5xx".
type StatusSet struct {
	codes   map[int]struct{}
	classes [6]bool
	set     bool
}

// ParseStatusSet parses tokens such as "408", "429", "5xx".
func ParseStatusSet(tokens []string) (StatusSet, error) {
	s := StatusSet{codes: map[int]struct{}{}, set: true}
	for _, tok := range tokens {
		t := strings.ToLower(strings.TrimSpace(tok))
		if len(t) == 3 && strings.HasSuffix(t, "xx") && t[0] >= '1' && t[0] <= '5' {
			s.classes[t[0]-'0'] = true
			continue
		}
		n, err := strconv.Atoi(t)
		if err != nil || n < 100 || n > 599 {
			return StatusSet{}, fmt.Errorf("invalid status %q (want 100-599 or a class like 5xx)", tok)
		}
		s.codes[n] = struct{}{}
	}
	return s, nil
}

// DefaultRetryOn is 408, 425, 429 and 5xx.
func DefaultRetryOn() StatusSet {
	s, _ := ParseStatusSet([]string{"408", "425", "429", "5xx"})
	return s
}

// Has reports whether status is in the set.
func (s StatusSet) Has(status int) bool {
	if status >= 100 && status <= 599 && s.classes[status/100] {
		return true
	}
	_, ok := s.codes[status]
	return ok
}

// Policy decides which outcomes are retried and when.
type Policy struct {
	Retries  int             // attempts after the first
	Base     time.Duration   // backoff ceiling of the first retry; default 500ms
	Max      time.Duration   // cap of every delay, Retry-After included; default 30s
	Schedule []time.Duration // if set, the delay before retry n is Schedule[min(n,len)-1] (no jitter)
	RetryOn  StatusSet       // zero value: DefaultRetryOn
	Rand     func() float64  // jitter source in [0,1); nil: math/rand/v2
}

// Retryable reports whether an attempt's outcome is worth another try:
// transport errors always; statuses only when in RetryOn.
func (p Policy) Retryable(status int, err error) bool {
	if err != nil {
		return !errors.Is(err, errNotRetryable)
	}
	set := p.RetryOn
	if !set.set {
		set = defaultRetryOn
	}
	return set.Has(status)
}

var defaultRetryOn = DefaultRetryOn()

// errNotRetryable marks request-building errors that no retry can fix.
var errNotRetryable = errors.New("request cannot be sent")

// Delay is the wait before retry n (1-based). Exponential with full
// jitter: a uniform draw in [0, min(Max, Base·2^(n-1))). With a Schedule,
// the schedule's entry. A Retry-After is honoured when longer, up to Max
// (exponential) or without a cap beyond the schedule's largest entry.
func (p Policy) Delay(n int, retryAfter time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	if len(p.Schedule) > 0 {
		d := p.Schedule[min(n, len(p.Schedule))-1]
		limit := p.Max
		if limit <= 0 {
			limit = maxOf(p.Schedule)
		}
		if retryAfter > d {
			d = min(retryAfter, limit)
		}
		return d
	}
	base, cap := p.Base, p.Max
	if base <= 0 {
		base = DefaultBase
	}
	if cap <= 0 {
		cap = DefaultMax
	}
	ceiling := cap
	if n-1 < 32 {
		if c := base << (n - 1); c > 0 && c < cap {
			ceiling = c
		}
	}
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	d := time.Duration(r() * float64(ceiling))
	if retryAfter > d {
		d = min(retryAfter, cap)
	}
	return d
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// ParseRetryAfter parses a Retry-After value: delta-seconds or an
// HTTP-date, relative to now. A date in the past gives 0.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64((100*365*24*time.Hour)/time.Second) {
			secs = int64((100 * 365 * 24 * time.Hour) / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}
