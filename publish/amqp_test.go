package publish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/caddy-webhooks/gateway/internal/rabbittest"
	"github.com/caddy-webhooks/gateway/publish"
)

// TestAMQP publishes to a real RabbitMQ started here.
func TestAMQP(t *testing.T) {
	b := rabbittest.Start(t)
	q := b.Declare(t, "events-to-enrich", "event.#")
	deliveries := b.Consume(t, q)

	p, err := publish.New(b.URL, publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx := t.Context()

	t.Run("confirmed and routed", func(t *testing.T) {
		m := publish.Message{ID: "ev-1", Exchange: "events-to-enrich", Key: "event.acme.github.push", Body: []byte(`{"ref":"main"}`), Hook: "gh", Attempt: 2}
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		d := rabbittest.Next(t, deliveries)
		if d.RoutingKey != m.Key || string(d.Body) != `{"ref":"main"}` || d.MessageId != "ev-1" ||
			d.DeliveryMode != amqp.Persistent || d.ContentType != "application/json" {
			t.Errorf("got key %q body %s id %q mode %d type %q", d.RoutingKey, d.Body, d.MessageId, d.DeliveryMode, d.ContentType)
		}
		if d.Headers[publish.HeaderHook] != "gh" || d.Headers[publish.HeaderAttempt] != int32(2) {
			t.Errorf("headers %v", d.Headers)
		}
	})

	t.Run("unroutable is a failure", func(t *testing.T) {
		err := p.Publish(ctx, publish.Message{ID: "ev-2", Exchange: "events-to-enrich", Key: "other.key", Body: []byte(`{}`)})
		if !errors.Is(err, publish.ErrUnroutable) {
			t.Fatalf("want ErrUnroutable, got %v", err)
		}
		// the channel goes on: the next routed publish is confirmed
		if err := p.Publish(ctx, publish.Message{ID: "ev-3", Exchange: "events-to-enrich", Key: "event.x", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if d := rabbittest.Next(t, deliveries); d.MessageId != "ev-3" {
			t.Errorf("got %q, want ev-3", d.MessageId)
		}
	})

	t.Run("missing exchange is a failure", func(t *testing.T) {
		err := p.Publish(ctx, publish.Message{ID: "ev-4", Exchange: "no-such-exchange", Key: "event.x", Body: []byte(`{}`)})
		if err == nil {
			t.Fatal("publish to a missing exchange succeeded")
		}
		if err := p.Publish(ctx, publish.Message{ID: "ev-5", Exchange: "events-to-enrich", Key: "event.x", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if d := rabbittest.Next(t, deliveries); d.MessageId != "ev-5" {
			t.Errorf("got %q, want ev-5", d.MessageId)
		}
	})

	t.Run("transient", func(t *testing.T) {
		tp, err := publish.New(b.URL, publish.Options{Transient: true})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tp.Close() }()
		if err := tp.Publish(ctx, publish.Message{ID: "ev-6", Exchange: "events-to-enrich", Key: "event.t", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if d := rabbittest.Next(t, deliveries); d.MessageId != "ev-6" || d.DeliveryMode != amqp.Transient {
			t.Errorf("got %q mode %d", d.MessageId, d.DeliveryMode)
		}
	})

	t.Run("concurrent publishes each confirmed", func(t *testing.T) {
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				key := "event.c"
				if i%10 == 0 {
					key = "unbound" // mixed in: their returns must not touch the others
				}
				errs <- p.Publish(ctx, publish.Message{ID: fmt.Sprintf("c-%d", i), Exchange: "events-to-enrich", Key: key, Body: []byte(`{}`)})
			})
		}
		wg.Wait()
		close(errs)
		var unroutable, other int
		for err := range errs {
			switch {
			case errors.Is(err, publish.ErrUnroutable):
				unroutable++
			case err != nil:
				other++
				t.Error(err)
			}
		}
		if unroutable != n/10 || other != 0 {
			t.Errorf("unroutable %d (want %d), other errors %d", unroutable, n/10, other)
		}
		seen := map[string]bool{}
		for len(seen) < n-n/10 {
			d := rabbittest.Next(t, deliveries)
			if seen[d.MessageId] || d.RoutingKey != "event.c" {
				t.Fatalf("unexpected delivery %q %q", d.MessageId, d.RoutingKey)
			}
			seen[d.MessageId] = true
		}
	})

	t.Run("wrong password is an error without it", func(t *testing.T) {
		bad := strings.Replace(b.URL, "guest:guest", "guest:s3cr3t-Pa55", 1)
		bp, err := publish.New(bad, publish.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = bp.Close() }()
		err = bp.Publish(ctx, publish.Message{ID: "x", Exchange: "events-to-enrich", Key: "event.x", Body: []byte(`{}`)})
		if err == nil || strings.Contains(err.Error(), "s3cr3t-Pa55") {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("nothing left running after Close", func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		lp, err := publish.New(b.URL, publish.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := lp.Publish(ctx, publish.Message{ID: fmt.Sprintf("l-%d", i), Exchange: "events-to-enrich", Key: "event.leak", Body: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := lp.Close(); err != nil {
			t.Fatal(err)
		}
		goleak.VerifyNone(t, ignore)
		for range 20 {
			rabbittest.Next(t, deliveries)
		}
	})

	t.Run("broker restart", func(t *testing.T) {
		b.Stop(t)
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.Publish(sctx, publish.Message{ID: "down", Exchange: "events-to-enrich", Key: "event.down", Body: []byte(`{}`)})
		cancel()
		if err == nil {
			t.Fatal("publish confirmed while the broker is down")
		}
		if strings.Contains(err.Error(), "guest:guest") {
			t.Errorf("error holds the credentials: %v", err)
		}
		b.Restart(t)
		// the same publisher dials again
		if err := p.Publish(ctx, publish.Message{ID: "up", Exchange: "events-to-enrich", Key: "event.up", Body: []byte(`{"after":"restart"}`)}); err != nil {
			t.Fatal(err)
		}
		d := rabbittest.Next(t, b.Consume(t, q))
		if d.MessageId != "up" || string(d.Body) != `{"after":"restart"}` {
			t.Errorf("after restart got %q %s", d.MessageId, d.Body)
		}
	})

	t.Run("closed", func(t *testing.T) {
		cp, _ := publish.New(b.URL, publish.Options{})
		_ = cp.Close()
		if err := cp.Publish(ctx, publish.Message{Exchange: "events-to-enrich", Key: "event.x"}); !errors.Is(err, publish.ErrClosed) {
			t.Errorf("want ErrClosed, got %v", err)
		}
	})
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"amqp://user:pa55@rabbit:5672/vh", "amqp://user:xxxxx@rabbit:5672/vh"},
		{"nats://tok3n@nats:4222", "nats://xxxxx@nats:4222"},
		{"amqp://rabbit:5672/", "amqp://rabbit:5672/"},
		{"amqp://us%er:p@ss@rabbit/", "amqp://xxxxx@rabbit/"},
	} {
		if got := publish.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, u := range []string{"http://x/", "amqp://u:p@[::1/", "kafka://h"} {
		_, err := publish.New(u, publish.Options{})
		if err == nil {
			t.Errorf("%q accepted", u)
		} else if strings.Contains(err.Error(), ":p@") {
			t.Errorf("%q: error holds the password: %v", u, err)
		}
	}
}
