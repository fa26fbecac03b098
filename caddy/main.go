// Command caddy is a Caddy binary with webhook_gateway plugged in: the same
// main package that `xcaddy build --with github.com/caddy-webhooks/gateway`
// generates.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddy-webhooks/gateway"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
