package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/queue"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults of the async side.
const (
	defaultWorkers = 16
	// leaseFor is how long a worker holds an event before another may take
	// it again; it must outlast one attempt with its timeout.
	leaseMargin = 30 * time.Second
	pollEvery   = 200 * time.Millisecond
	// defaultOrphanAfter is how long an event whose hook is gone from the
	// config waits (deferred, not attempted) before it goes dead.
	defaultOrphanAfter = 24 * time.Hour
	// defaultRetain keeps finished events a week; purgeEvery is how often
	// older ones are removed.
	defaultRetain = 7 * 24 * time.Hour
	purgeEvery    = 10 * time.Minute
)

// DefaultSchedule is the async retry schedule, like the big senders use:
// the delay before each retry after the first attempt.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// stores holds open event stores across config reloads: a reload starts the
// new config before the old one stops, and both must share one open store.
var stores = caddy.NewUsagePool()

// App is the webhook_gateway app: it owns the durable event store of
// `mode async` and the workers that deliver stored events. Handlers find
// it through the Caddy context. Without a global webhook_gateway block it
// starts with the embedded Pebble store under Caddy's data directory.
//
// Caddyfile (global options):
//
//	webhook_gateway {
//		store pebble [<dir>] [{ cache_size <size> }]
//		store nats <url...> {
//			stream   <prefix>
//			replicas <n>
//			creds    <file>
//			accept_timeout <duration>
//		}
//		workers <n>
//		retain <duration>
//		orphan_after <duration>
//	}
type App struct {
	// Store selects and configures the event store. Default: Pebble in
	// Caddy's data directory.
	Store *StoreConfig `json:"store,omitempty"`

	// Workers is the number of concurrent deliveries. Default: 16.
	Workers int `json:"workers,omitempty"`

	// Retain is how long delivered and dead events stay in the store (for
	// the admin API and replay) after their last change. Default: 7 days.
	Retain caddy.Duration `json:"retain,omitempty"`

	// OrphanAfter is how long an event whose hook is no longer in the
	// config (removed or renamed) is kept waiting, deferred with a growing
	// delay and without counting attempts, before it goes dead with the
	// reason. Default: 24h.
	OrphanAfter caddy.Duration `json:"orphan_after,omitempty"`

	ctx         caddy.Context
	store       queue.Store // nil until a handler in mode async, or one that logs, needs it
	storeKey    string
	recorder    *recorder // writes the run log; set with the store
	orphanAfter time.Duration
	logger      *zap.Logger
	now         func() time.Time
	*workers
}

// workers is the running state of the app, behind a pointer so the
// config struct stays copyable.
type workers struct {
	mu             sync.RWMutex
	hooks          map[string]*Handler
	leaseFor       atomic.Int64 // longest action timeout + margin, as a duration
	wake           chan struct{}
	waiting        atomic.Bool // events may be due in the store beyond those leased
	jobs           chan *queue.Event
	free           atomic.Int64       // idle workers not yet promised an event
	handoff        sync.RWMutex       // held to read by hand-offs, to write by Stop
	stopping       bool               // under handoff: workers are leaving
	cancel         context.CancelFunc // stops leasing
	cancelAttempts context.CancelFunc // cancels attempts in flight
	done           sync.WaitGroup
}

// StoreConfig configures the event store.
type StoreConfig struct {
	// Kind is "pebble" (embedded, the default) or "nats" (a NATS
	// JetStream cluster shared by several gateway instances).
	Kind string `json:"kind,omitempty"`

	// Path of the Pebble directory. Default: webhook_gateway/events under
	// Caddy's data directory.
	Path string `json:"path,omitempty"`

	// CacheSize is Pebble's block cache, in bytes. Default: 16 MiB.
	CacheSize int64 `json:"cache_size,omitempty"`

	// URLs of the NATS servers (nats://host:port, tls://host:port).
	// Placeholders such as {env.NATS_URL} are resolved.
	URLs []string `json:"urls,omitempty"`

	// Stream is the prefix of the NATS streams, buckets and subjects.
	// Default: webhook_gateway.
	Stream string `json:"stream,omitempty"`

	// Replicas of every NATS stream and bucket. Default 3; 1 for a single
	// server.
	Replicas int `json:"replicas,omitempty"`

	// CredsFile is a NATS credentials file (JWT and nkey seed).
	CredsFile string `json:"creds_file,omitempty"`

	// AcceptTimeout bounds the durable write of an accepted event on
	// NATS: JetStream acknowledges it within this time (202), or the
	// sender gets 503 with Retry-After. Default 2s; keep it well under
	// the senders' own timeouts.
	AcceptTimeout caddy.Duration `json:"accept_timeout,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "webhook_gateway",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens the store, shared with any other config generation that
// uses the same one.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.workers = &workers{hooks: map[string]*Handler{}, wake: make(chan struct{}, 1)}
	a.leaseFor.Store(int64(defaultTimeout + leaseMargin))
	if a.now == nil {
		a.now = time.Now
	}
	if a.Workers <= 0 {
		a.Workers = defaultWorkers
	}
	if a.Retain < 0 {
		return errors.New("retain must not be negative")
	}
	if a.Retain == 0 {
		a.Retain = caddy.Duration(defaultRetain)
	}
	if a.OrphanAfter < 0 {
		return errors.New("orphan_after must not be negative")
	}
	a.orphanAfter = time.Duration(a.OrphanAfter)
	if a.orphanAfter == 0 {
		a.orphanAfter = defaultOrphanAfter
	}
	if a.Store != nil {
		switch a.Store.Kind {
		case "", "pebble", "nats":
		default:
			return fmt.Errorf("unknown store kind %q (want pebble or nats)", a.Store.Kind)
		}
	}
	a.ctx = ctx
	if a.Store != nil {
		// a store named in the global options is opened even with no async
		// handler: its events are still delivered (or orphaned), and the
		// admin API shows them
		return a.openStore()
	}
	return nil
}

// openStore opens the event store, shared with any other config
// generation that uses the same one. It is opened when the config names
// one, else by the first handler in mode async while it is provisioned,
// so errors stop the config load; a config with neither opens none.
func (a *App) openStore() error {
	if a.store != nil {
		return nil
	}
	ctx := a.ctx
	cfg := StoreConfig{Kind: "pebble"}
	if a.Store != nil {
		cfg = *a.Store
	}
	repl := caddy.NewReplacer()
	switch cfg.Kind {
	case "", "pebble":
		path := repl.ReplaceKnown(cfg.Path, "")
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "webhook_gateway", "events")
		}
		a.storeKey = "pebble:" + path
		logger := pebbleLogger{a.logger.Named("pebble").Sugar()}
		val, _, err := stores.LoadOrNew(a.storeKey, func() (caddy.Destructor, error) {
			s, err := queue.OpenPebble(path, queue.PebbleOptions{CacheSize: cfg.CacheSize, Logger: logger})
			if err != nil {
				return nil, err
			}
			return storeDestructor{s}, nil
		})
		if err != nil {
			return fmt.Errorf("opening event store %s: %w", path, err)
		}
		a.store = val.(storeDestructor).Store
	case "nats":
		opts := queue.NATSOptions{Stream: cfg.Stream, Replicas: cfg.Replicas, CredsFile: repl.ReplaceKnown(cfg.CredsFile, ""), AcceptTimeout: time.Duration(cfg.AcceptTimeout)}
		for _, u := range cfg.URLs {
			for _, one := range strings.Split(repl.ReplaceKnown(u, ""), ",") {
				if one = strings.TrimSpace(one); one != "" {
					opts.URLs = append(opts.URLs, one)
				}
			}
		}
		if len(opts.URLs) == 0 {
			return errors.New("store nats needs at least one server URL")
		}
		a.storeKey = fmt.Sprintf("nats:%s/%s/%d/%v", strings.Join(opts.URLs, ","), opts.Stream, opts.Replicas, opts.AcceptTimeout)
		val, _, err := stores.LoadOrNew(a.storeKey, func() (caddy.Destructor, error) {
			openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			s, err := queue.OpenNATS(openCtx, opts)
			if err != nil {
				return nil, err
			}
			return storeDestructor{s}, nil
		})
		if err != nil {
			return fmt.Errorf("opening the NATS event store: %w", err)
		}
		a.store = val.(storeDestructor).Store
	}
	a.recorder = newRecorder(a.store, a.logger.Named("run_log"))
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(newQueueCollector(a.store)); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return fmt.Errorf("registering queue metrics: %w", err)
			}
		}
	}
	return nil
}

// pebbleLogger routes Pebble's lines to zap: its routine lines (WAL
// replays, compactions) at debug level, errors as errors, and a fatal
// error (a corrupt database) ends the process, as Pebble requires.
type pebbleLogger struct{ *zap.SugaredLogger }

func (l pebbleLogger) Infof(format string, args ...any) { l.Debugf(format, args...) }

// storeDestructor closes a store when its last config generation is gone.
type storeDestructor struct{ queue.Store }

func (s storeDestructor) Destruct() error { return s.Close() }

// stopGrace is how long Stop lets attempts in flight finish before it
// cancels them; a cancelled or untried event is released, due at once for
// the next config's workers.
const stopGrace = 5 * time.Second

// Start starts the delivery workers and the run log's writer, if a
// handler stores events or logs.
func (a *App) Start() error {
	if a.store == nil {
		return nil
	}
	a.recorder.start()
	leaseCtx, stopLeasing := context.WithCancel(context.Background())
	attemptCtx, cancelAttempts := context.WithCancel(context.Background())
	a.cancel, a.cancelAttempts = stopLeasing, cancelAttempts
	// Every event sent on jobs was promised to an idle worker first (see
	// reserve), so with room for one per worker a send never blocks.
	a.jobs = make(chan *queue.Event, a.Workers)
	a.free.Store(int64(a.Workers))
	for range a.Workers {
		a.done.Go(func() {
			for {
				select {
				case <-leaseCtx.Done():
					return
				case ev := <-a.jobs:
					if leaseCtx.Err() != nil {
						a.release(ev) // stopping: not tried here
						continue
					}
					a.deliver(attemptCtx, ev)
					a.free.Add(1)
					// Only a store known to hold waiting events is read
					// now; retries coming due are found by the poll.
					if a.waiting.Load() {
						a.notify()
					}
				}
			}
		})
	}
	a.done.Go(func() { a.leaseLoop(leaseCtx) })
	a.done.Go(func() { a.purgeLoop(leaseCtx) })
	return nil
}

// stopped is the free count once Stop began: no reservation succeeds.
const stopped = -1 << 40

// reserve promises n idle workers to an event about to be stored, so it
// can be stored already leased and handed over without being read back.
func (a *App) reserve(n int) bool {
	for {
		free := a.free.Load()
		if free < int64(n) {
			return false
		}
		if a.free.CompareAndSwap(free, free-int64(n)) {
			return true
		}
	}
}

// takeFree promises every idle worker not yet promised to the lease loop
// and returns how many that is.
func (a *App) takeFree() int {
	for {
		free := a.free.Load()
		if free <= 0 {
			return 0
		}
		if a.free.CompareAndSwap(free, 0) {
			return int(free)
		}
	}
}

// handOff gives the workers that reserve promised the events stored
// leased, and returns the promises not used (the store did not lease an
// event, or nothing was stored).
func (a *App) handOff(evs []*queue.Event, reserved, stored bool) {
	if !reserved {
		if stored {
			a.notify()
		}
		return
	}
	unused := 0
	a.handoff.RLock()
	defer a.handoff.RUnlock()
	for _, ev := range evs {
		if stored && ev.Status == queue.StatusDelivering {
			if a.stopping {
				// Stop began between the reservation and the write:
				// give the lease back for the next config's workers.
				a.release(ev)
				continue
			}
			a.jobs <- ev
			continue
		}
		unused++
	}
	if unused > 0 {
		a.free.Add(int64(unused))
		a.notify()
	}
}

// purgeLoop removes finished events older than Retain, now and then.
func (a *App) purgeLoop(ctx context.Context) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := a.store.Purge(ctx, a.now().Add(-time.Duration(a.Retain)))
		switch {
		case err != nil && ctx.Err() == nil:
			a.logger.Warn("purging finished events", zap.Error(err))
		case n > 0:
			a.logger.Info("purged finished events", zap.Int("events", n), zap.Duration("older_than", time.Duration(a.Retain)))
		}
		a.purgeResults(ctx)
		t.Reset(purgeEvery)
	}
}

// Stop stops leasing, lets attempts in flight finish for up to stopGrace,
// and gives back every leased event it did not try.
func (a *App) Stop() error {
	if a.cancel == nil {
		return nil
	}
	a.free.Add(stopped) // no new reservations: events are stored queued
	a.handoff.Lock()
	a.stopping = true // and reservations made before are released
	a.handoff.Unlock()
	a.cancel()
	done := make(chan struct{})
	go func() {
		a.done.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		a.cancelAttempts()
		<-done
	}
	a.cancelAttempts()
	a.recorder.stop()
	// events handed off after the workers left
	for {
		select {
		case ev := <-a.jobs:
			a.release(ev)
		default:
			return nil
		}
	}
}

// release gives a leased event back to the store, due now.
func (a *App) release(ev *queue.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.store.Release(ctx, queue.LeaseOf(ev)); err != nil {
		a.logger.Warn("releasing event", zap.String("hook", ev.Hook), zap.String("id", ev.ID), zap.Error(err))
	}
}

// Cleanup releases this generation's use of the store.
func (a *App) Cleanup() error {
	if a.storeKey != "" {
		_, err := stores.Delete(a.storeKey)
		return err
	}
	return nil
}

// register makes h deliver the events of its hook. Two handlers of one
// config with the same name must have the same config: otherwise one's
// signer, policy and TLS settings would deliver the other's events.
func (a *App) register(h *Handler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if other, ok := a.hooks[h.name]; ok && other != h && other.fingerprint != h.fingerprint {
		return fmt.Errorf("two webhook_gateway handlers are named %q but are configured differently; "+
			"events, metrics and logs are keyed by name, so give each one its own `name`", h.name)
	}
	if h.async || h.logs() {
		if err := a.openStore(); err != nil {
			return err
		}
	}
	if a.recorder != nil {
		a.recorder.limit(h.name, h.runLog.max)
	}
	a.hooks[h.name] = h
	longest := time.Duration(a.leaseFor.Load())
	for _, act := range h.actions {
		longest = max(longest, act.timeout+leaseMargin)
	}
	a.leaseFor.Store(int64(longest))
	return nil
}

func (a *App) unregister(h *Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hooks[h.name] == h {
		delete(a.hooks, h.name)
	}
}

func (a *App) handler(hook string) *Handler {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.hooks[hook]
}

// notify wakes the lease loop after events were stored queued (or
// replayed, or given back), so they do not wait for the next poll.
func (a *App) notify() {
	a.waiting.Store(true)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// leaseLoop leases due events for the idle workers until ctx ends.
func (a *App) leaseLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-a.wake:
		}
		n := a.takeFree()
		if n == 0 {
			// every worker is busy or promised; one that finishes wakes
			// the loop, the timer is a safety net
			timer.Reset(pollEvery)
			continue
		}
		// Cleared before reading: an event stored queued after this
		// read began sets it again.
		a.waiting.Store(false)
		evs, err := a.store.Lease(ctx, n, a.leaseDuration())
		if err != nil && ctx.Err() == nil {
			a.logger.Warn("leasing events", zap.Error(err))
		}
		if err != nil || len(evs) == n {
			a.waiting.Store(true) // more may be due
		}
		for _, ev := range evs {
			a.jobs <- ev
		}
		a.free.Add(int64(n - len(evs)))
		if len(evs) == n {
			timer.Reset(0) // more may be due
		} else {
			timer.Reset(pollEvery)
		}
	}
}

// record hands a run log record to the recorder, without waiting.
func (a *App) record(ev *queue.Event) {
	if a.recorder != nil {
		a.recorder.submit(ev)
	}
}

// stored counts the records of an accepted async event for log_max.
func (a *App) stored(hook string, n int) {
	if a.recorder != nil {
		a.recorder.added(hook, n)
	}
}

func (a *App) leaseDuration() time.Duration { return time.Duration(a.leaseFor.Load()) }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
