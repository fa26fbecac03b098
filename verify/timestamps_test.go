package verify_test

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/verify"
)

// TestFarTimestamps signs, for every preset whose test case signs a
// timestamp (the registry iterated, not a hand list), requests at far-off
// times with the documented signer: each must be refused although its
// signature is valid. A Duration between now and such a time saturates,
// and its negation overflows: Stripe t=99999999999 and Twitch
// 9999-12-31T23:59:59Z once passed. The tolerance edges are checked too.
func TestFarTimestamps(t *testing.T) {
	cases := map[string]presetCase{}
	for _, tc := range append(presetCases[:len(presetCases):len(presetCases)], extraCases...) {
		cases[tc.name] = tc
	}
	const tol = 5 * time.Minute
	far := map[string]time.Time{
		"unix 99999999999":      time.Unix(99999999999, 0),
		"unix 999999999999999":  time.Unix(999999999999999, 0),
		"9999-12-31T23:59:59Z":  time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		"negative":              time.Unix(-1, 0),
		"year 1":                time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"tolerance + 1s ahead":  fixedNow.Add(tol + time.Second),
		"tolerance + 1s behind": fixedNow.Add(-tol - time.Second),
	}
	near := map[string]time.Time{
		"tolerance behind":     fixedNow.Add(-tol),
		"tolerance - 1s ahead": fixedNow.Add(tol - time.Second),
	}
	stamped := 0
	for _, name := range verify.Presets() {
		tc, ok := cases[name]
		if !ok || !tc.stamped {
			continue
		}
		stamped++
		t.Run(name, func(t *testing.T) {
			v := mustNew(t, verify.Spec{Method: name, Secrets: []string{tc.secret}, Tolerance: tol})
			body := trapBody
			if tc.body != nil {
				body = tc.body
			}
			verifyAt := func(at time.Time) error {
				b := append([]byte(nil), body...)
				r := newRequest(tc.sign(tc.secret, at, b), b)
				if tc.setup != nil {
					tc.setup(r)
				}
				return v.Verify(r, b)
			}
			for what, at := range far {
				err := verifyAt(at)
				if err == nil {
					t.Errorf("%s: a validly signed request was accepted", what)
				} else if errors.Is(err, verify.ErrMismatch) {
					t.Errorf("%s: refused only as a mismatch (%v): the signer or the test is wrong", what, err)
				}
			}
			for what, at := range near {
				if err := verifyAt(at); err != nil {
					t.Errorf("%s: refused: %v", what, err)
				}
			}
		})
	}
	if stamped < 20 {
		t.Fatalf("only %d timestamped presets found", stamped)
	}
}
