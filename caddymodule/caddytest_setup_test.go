package caddymodule_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The tests serve plain HTTP only, so caddytest needs no certificates.
// Its default expects caddy.localhost.crt/.key next to its own source and
// skips every test when they are not found (as under -trimpath), which
// would hide a broken feature behind "ok".
func init() {
	caddytest.Default.Certificates = nil
}

// TestMain gives the tests a data directory of their own: every hook that
// logs opens the event store, by default under Caddy's data directory,
// which other test binaries and a Caddy on this machine must not share.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddymodule-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Setenv("XDG_DATA_HOME", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
