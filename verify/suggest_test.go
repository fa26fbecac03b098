package verify_test

import (
	"testing"

	"github.com/caddy-webhooks/gateway/verify"
)

func TestClosest(t *testing.T) {
	for in, want := range map[string]string{
		"githb":    "github",
		"GitHub":   "github",
		"strip":    "stripe",
		"standart": "standard",
		"xyz":      "",
		"hmac":     "",
		"":         "",
	} {
		if got := verify.Closest(in); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}
