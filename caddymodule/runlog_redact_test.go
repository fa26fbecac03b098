package caddymodule

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// redacts finds a credential header by any spelling of its name.
func TestRedactsAnySpelling(t *testing.T) {
	redact := map[string]bool{"Authorization": true, "X-Api-Key": true, "X_api_key": true, "Cookie": true}
	h := &Handler{runLog: runLogConfig{redact: slices.Collect(maps.Keys(redact))}}
	for name, want := range map[string]bool{
		"Authorization": true, "authorization": true, "AUTHORIZATION": true, "aUTHORIZATIOn": true,
		"X-Api-Key": true, "x-api-key": true, "X-API-KEY": true, "x_api_key": true, "X_API_KEY": true,
		"X-Api-Keys": false, "Content-Type": false, "X Api-Key": false, "cookie": true, "Cookies": false,
		"Authorizatio": false, "Co\u212aie": false, "": false,
	} {
		if got := h.redacts(name, []string{"v"}, nil); got != want {
			t.Errorf("redacts(%q) = %v, want %v", name, got, want)
		}
		if got, old := h.redacts(name, []string{"v"}, nil), redact[http.CanonicalHeaderKey(name)]; got != old {
			t.Errorf("redacts(%q) = %v, the canonical lookup says %v", name, got, old)
		}
	}
}

// remoteIP is Caddy's client IP as it is (it has no port), else the
// connection's address without its port.
func TestRemoteIP(t *testing.T) {
	for _, c := range []struct{ clientIP, remoteAddr, want string }{
		{"", "192.0.2.7:5555", "192.0.2.7"},
		{"", "[2001:db8::1]:443", "2001:db8::1"},
		{"", "@", "@"},
		{"198.51.100.4", "192.0.2.7:5555", "198.51.100.4"},
		{"2001:db8::2", "[2001:db8::1]:443", "2001:db8::2"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/hook", nil)
		r.RemoteAddr = c.remoteAddr
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
		if c.clientIP != "" {
			caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, c.clientIP)
		}
		if got := remoteIP(r); got != c.want {
			t.Errorf("remoteIP with client IP %q and remote address %q = %q, want %q", c.clientIP, c.remoteAddr, got, c.want)
		}
	}
}
