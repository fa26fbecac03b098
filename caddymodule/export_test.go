package caddymodule

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-webhooks/gateway/queue"
)

// RunningStore is the event store of the running config's app, nil when
// it has none.
func RunningStore() queue.Store {
	app, err := caddy.ActiveContext().AppIfConfigured("webhook_gateway")
	if err != nil {
		return nil
	}
	return app.(*App).store
}

// SetRunLogQueue makes the recorders of configs loaded from now on queue
// at most n records and hold each store write until gate gives way (nil:
// no gate). It returns the function that restores the defaults.
func SetRunLogQueue(n int, gate chan struct{}) (restore func()) {
	logQueue, logGate = n, gate
	return func() { logQueue, logGate = logQueueDefault, nil }
}
