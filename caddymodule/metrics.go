package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-webhooks/gateway/queue"
)

// Rejection reasons, the "reason" label of the rejected counter.
const (
	reasonMethod      = "method"
	reasonContentType = "content_type"
	reasonSize        = "size"
	reasonBody        = "body"
	reasonAuth        = "auth"
	reasonAuthBusy    = "auth_busy"
	reasonJSON        = "json"
	reasonMapping     = "mapping"
	reasonStore       = "store"
)

// collectors are created once per process and registered into each
// config's registry at Provision: Caddy makes a new registry per config
// load, and creating collectors anew per load would lose their counts.
var collectors = sync.OnceValue(func() *gatewayCollectors {
	const ns, sub = "caddy", "webhook_gateway"
	return &gatewayCollectors{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "received_total",
			Help: "Webhook requests received, by hook.",
		}, []string{"hook"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Webhook requests rejected, by hook and reason.",
		}, []string{"hook", "reason"}),
		passed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "passed_total",
			Help: "Verified webhooks passed to the next handler (gate mode), by hook.",
		}, []string{"hook"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "forwarded_total",
			Help: "Deliveries to upstream actions, by hook, action and outcome (2xx, 4xx, 5xx, error, timeout).",
		}, []string{"hook", "action", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "attempts_total",
			Help: "Outbound attempts, by hook and action.",
		}, []string{"hook", "action"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Outbound attempts after the first, by hook and action.",
		}, []string{"hook", "action"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dead_total",
			Help: "Async events moved to dead after their last attempt, by hook.",
		}, []string{"hook"}),
		logDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "log_dropped_total",
			Help: "Run log records not kept (the recorder's queue was full, or the store refused the write), by hook.",
		}, []string{"hook"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "delivery_duration_seconds",
			Help:    "Time to deliver to an action, all attempts included, by hook and action.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"hook", "action"}),
	}
})

type gatewayCollectors struct {
	received  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	passed    *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	dead      *prometheus.CounterVec
	latency   *prometheus.HistogramVec

	logDropped *prometheus.CounterVec
}

// hookMetrics are the collectors with this hook's label bound where the
// label set is fixed.
type hookMetrics struct {
	received  prometheus.Counter
	passed    prometheus.Counter
	rejected  *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	dead      *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

func registerMetrics(reg prometheus.Registerer, hook string) (*hookMetrics, error) {
	c := collectors()
	if reg != nil {
		for _, col := range []prometheus.Collector{c.received, c.rejected, c.passed, c.forwarded, c.attempts, c.retries, c.dead, c.latency, c.logDropped} {
			if err := reg.Register(col); err != nil {
				var already prometheus.AlreadyRegisteredError
				if !errors.As(err, &already) {
					return nil, err
				}
			}
		}
	}
	return &hookMetrics{
		received:  c.received.WithLabelValues(hook),
		passed:    c.passed.WithLabelValues(hook),
		rejected:  c.rejected,
		forwarded: c.forwarded,
		attempts:  c.attempts,
		retries:   c.retries,
		dead:      c.dead,
		latency:   c.latency,
	}, nil
}

// queueCollector reports the event store's depth at scrape time: events by
// hook and status, and the age of the oldest due event. The Pebble store
// keeps its counts per transition; the NATS store reads its records, so a
// reading is reused for statsEvery.
type queueCollector struct {
	store  queue.Store
	events *prometheus.Desc
	oldest *prometheus.Desc

	mu    sync.Mutex
	last  queue.Stats
	at    time.Time
	valid bool
}

const statsEvery = 5 * time.Second

func newQueueCollector(store queue.Store) *queueCollector {
	return &queueCollector{
		store: store,
		events: prometheus.NewDesc("caddy_webhook_gateway_queue_events",
			"Stored records, by hook and status: async events (queued, delivering, delivered, dead) and run log records (delivered, dead, rejected, passed, duplicate).", []string{"hook", "status"}, nil),
		oldest: prometheus.NewDesc("caddy_webhook_gateway_queue_oldest_due_seconds",
			"Age of the oldest event due for delivery; 0 when none is waiting.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.oldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || time.Since(c.at) >= statsEvery {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.store.Stats(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.events, err)
			return
		}
		c.last, c.at, c.valid = st, time.Now(), true
	}
	st := c.last
	for hook, byStatus := range st.Counts {
		for status, n := range byStatus {
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(n), hook, string(status))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, st.OldestDue.Seconds())
}
