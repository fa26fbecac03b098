package caddymodule

import (
	"math/rand/v2"
	"net/http"
	"testing"
)

// A name canonical says is in canonical form is one that
// http.CanonicalHeaderKey returns unchanged, so redacts may look it up as
// it is.
func TestCanonicalAgreesWithCanonicalHeaderKey(t *testing.T) {
	names := []string{
		"", "-", "--", "A", "a", "X-Api-Key", "x-api-key", "X-API-KEY", "X-Api-key",
		"Authorization", "AUTHORIZATION", "X-Hub-Signature-256", "X-Hub-signature-256",
		"X-B2b", "X-B2B", "X_api_key", "X_Api_Key", "X Api-Key", "X-Api Key", "Content-Type",
		"\xffX-Key", "X-K\xe9y", "1a-B", "1A-b",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aAbBzZ-_09 :\xc3\xa9"
	for range 200000 {
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		names = append(names, string(b))
	}
	for _, name := range names {
		if canonical(name) && http.CanonicalHeaderKey(name) != name {
			t.Fatalf("canonical(%q) is true, but CanonicalHeaderKey gives %q", name, http.CanonicalHeaderKey(name))
		}
	}
	// and every name in canonical form (a fixed point) is found as such,
	// apart from those CanonicalHeaderKey leaves as they are for a byte
	// not allowed in a name
	for _, name := range []string{"X-Api-Key", "Authorization", "X-B2b", "A", "-", "X-Hub-Signature-256"} {
		if !canonical(name) {
			t.Errorf("canonical(%q) is false", name)
		}
	}
}

// redacts finds a credential header by any spelling of its name.
func TestRedactsAnySpelling(t *testing.T) {
	h := &Handler{runLog: runLogConfig{redact: map[string]bool{"Authorization": true, "X-Api-Key": true, "X_api_key": true}}}
	for name, want := range map[string]bool{
		"Authorization": true, "authorization": true, "AUTHORIZATION": true, "aUTHORIZATIOn": true,
		"X-Api-Key": true, "x-api-key": true, "X-API-KEY": true, "x_api_key": true, "X_API_KEY": true,
		"X-Api-Keys": false, "Content-Type": false, "X Api-Key": false,
	} {
		if got := h.redacts(name, []string{"v"}, nil); got != want {
			t.Errorf("redacts(%q) = %v, want %v", name, got, want)
		}
		if got, old := h.redacts(name, []string{"v"}, nil), h.runLog.redact[http.CanonicalHeaderKey(name)]; got != old {
			t.Errorf("redacts(%q) = %v, the canonical lookup says %v", name, got, old)
		}
	}
}
