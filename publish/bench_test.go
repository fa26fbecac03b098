package publish_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/caddy-webhooks/gateway/internal/rabbittest"
	"github.com/caddy-webhooks/gateway/publish"
)

// BenchmarkAMQPPublish measures confirmed, persistent publishes of a 1 KiB
// body to a durable queue on a local broker, from parallel callers (as
// async workers and sync requests publish). SetParallelism multiplies
// GOMAXPROCS: run with -cpu 1 for the caller counts as named.
func BenchmarkAMQPPublish(b *testing.B) {
	broker := rabbittest.Start(b)
	broker.Declare(b, "bench", "event.#")
	p, err := publish.New(broker.URL, publish.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'x'
	}
	var n atomic.Int64
	publishing := func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m := publish.Message{ID: fmt.Sprint(n.Add(1)), Exchange: "bench", Key: "event.bench", Body: body}
				if err := p.Publish(b.Context(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	// one broker for all runs: the callers are goroutines per GOMAXPROCS
	// times the parallelism
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.SetParallelism(callers)
			publishing(b)
		})
	}
}
