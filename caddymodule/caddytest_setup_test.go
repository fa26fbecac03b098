package caddymodule_test

import "github.com/caddyserver/caddy/v2/caddytest"

// The tests serve plain HTTP only, so caddytest needs no certificates.
// Its default expects caddy.localhost.crt/.key next to its own source and
// skips every test when they are not found (as under -trimpath), which
// would hide a broken feature behind "ok".
func init() {
	caddytest.Default.Certificates = nil
}
