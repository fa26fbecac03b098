// Package gateway is the module root of webhook_gateway, a Caddy v2 handler
// that authenticates webhooks, enforces JSON, reshapes payloads and forwards
// them to upstream actions.
//
// Importing this package registers the Caddy modules, so
//
//	xcaddy build --with github.com/caddy-webhooks/gateway
//
// builds a Caddy binary that has them.
package gateway

import (
	// Registers http.handlers.webhook_gateway and its Caddyfile directive.
	_ "github.com/caddy-webhooks/gateway/caddymodule"
)
