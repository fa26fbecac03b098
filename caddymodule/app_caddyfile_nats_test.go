package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestStoreNATSAcceptTimeoutRefused checks that accept_timeout takes one
// positive duration and says so otherwise.
func TestStoreNATSAcceptTimeoutRefused(t *testing.T) {
	for _, v := range []string{"soon", "0s", "-1s", "1s 2s", ""} {
		input := "webhook_gateway {\n store nats nats://127.0.0.1:4222 {\n  accept_timeout " + v + "\n }\n}"
		err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil {
			t.Errorf("accept_timeout %q accepted", v)
			continue
		}
		if !strings.Contains(err.Error(), "accept_timeout") {
			t.Errorf("accept_timeout %q: error %q does not name the option", v, err)
		}
	}
}
