package caddymodule

import (
	"maps"
	"net/http"
	"slices"
	"testing"
)

// redacts finds a credential header by any spelling of its name.
func TestRedactsAnySpelling(t *testing.T) {
	redact := map[string]bool{"Authorization": true, "X-Api-Key": true, "X_api_key": true, "Cookie": true}
	h := &Handler{runLog: runLogConfig{redact: redact, names: slices.Collect(maps.Keys(redact))}}
	for name, want := range map[string]bool{
		"Authorization": true, "authorization": true, "AUTHORIZATION": true, "aUTHORIZATIOn": true,
		"X-Api-Key": true, "x-api-key": true, "X-API-KEY": true, "x_api_key": true, "X_API_KEY": true,
		"X-Api-Keys": false, "Content-Type": false, "X Api-Key": false, "cookie": true, "Cookies": false,
		"Authorizatio": false, "Co\u212aie": false, "": false,
	} {
		if got := h.redacts(name, []string{"v"}, nil); got != want {
			t.Errorf("redacts(%q) = %v, want %v", name, got, want)
		}
		if got, old := h.redacts(name, []string{"v"}, nil), h.runLog.redact[http.CanonicalHeaderKey(name)]; got != old {
			t.Errorf("redacts(%q) = %v, the canonical lookup says %v", name, got, old)
		}
	}
}
