package caddymodule

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/queue"
)

// Bounds of the run log recorder.
const (
	logBatch        = 256                   // records in one store write at most
	logLinger       = 20 * time.Millisecond // how long a batch waits for more records
	logWriteTimeout = 10 * time.Second      // one store write
	logWarnEvery    = time.Minute           // at most one warning about failed writes
	logSeedTimeout  = 30 * time.Second      // counting the records already stored
	logTrimTimeout  = 60 * time.Second      // one Trim
	logQueueDefault = 4096                  // records waiting to be written
	logTrimSlack    = 100                   // a hook is trimmed once 1/logTrimSlack over its log_max
	logStopTimeout  = 10 * time.Second      // writing what is left when the app stops
)

// Test hooks: the queue length, and a gate that the writer waits on with
// each batch's first record in hand.
var (
	logQueue = logQueueDefault
	logGate  chan struct{}
)

// recorder writes the run log records of sync, gate, rejected and
// duplicate requests: handlers hand them over without waiting, and one
// goroutine writes them in batches (store.Record, not synced). When the
// queue is full a record is dropped and counted, so that a slow store
// never slows requests down. It also keeps each hook's records under its
// log_max, from counts kept in memory.
type recorder struct {
	store  queue.Store
	logger *zap.Logger
	ch     chan *queue.Event
	gate   chan struct{}
	wake   chan struct{} // a hook may be over its log_max
	quit   chan struct{}
	ctx    context.Context // ends at stop
	cancel context.CancelFunc
	closed atomic.Bool
	done   sync.WaitGroup
	counts sync.Map // hook -> *hookCount

	lastWarn time.Time // under the loop goroutine only
	lost     int
}

// hookCount is how many records a hook has in the store, as far as this
// recorder knows, and how many it may keep.
type hookCount struct {
	n   atomic.Int64
	max atomic.Int64
}

func newRecorder(store queue.Store, logger *zap.Logger) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	return &recorder{
		ctx:    ctx,
		cancel: cancel,
		store:  store,
		logger: logger,
		ch:     make(chan *queue.Event, logQueue),
		gate:   logGate,
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}
}

func (rc *recorder) count(hook string) *hookCount {
	if c, ok := rc.counts.Load(hook); ok {
		return c.(*hookCount)
	}
	c, _ := rc.counts.LoadOrStore(hook, new(hookCount))
	return c.(*hookCount)
}

// limit sets how many records of hook are kept.
func (rc *recorder) limit(hook string, max int) { rc.count(hook).max.Store(int64(max)) }

// submit queues a record without waiting; a full queue drops it.
func (rc *recorder) submit(ev *queue.Event) {
	if rc.closed.Load() {
		rc.drop(ev.Hook, 1)
		return
	}
	select {
	case rc.ch <- ev:
	default:
		rc.drop(ev.Hook, 1)
	}
}

func (rc *recorder) drop(hook string, n int) {
	collectors().logDropped.WithLabelValues(hook).Add(float64(n))
}

// added counts n records of hook written by someone else (async events),
// and wakes the loop when the hook may be over its log_max.
func (rc *recorder) added(hook string, n int) {
	c := rc.count(hook)
	if over(c.n.Add(int64(n)), c.max.Load()) {
		select {
		case rc.wake <- struct{}{}:
		default:
		}
	}
}

// over: a hook is trimmed once it is a little over its log_max, so that
// a hook at its limit is not trimmed on every batch.
func over(n, max int64) bool { return max > 0 && n > max+max/logTrimSlack }

// start runs the writer, and counts the records already stored so that
// log_max holds across restarts.
func (rc *recorder) start() {
	rc.done.Go(rc.run)
	rc.done.Go(rc.seed)
}

// stop writes what is queued and ends the goroutines; later records are
// dropped.
func (rc *recorder) stop() {
	if rc.closed.Swap(true) {
		return
	}
	close(rc.quit)
	rc.cancel()
	rc.done.Wait()
}

func (rc *recorder) seed() {
	ctx, cancel := context.WithTimeout(rc.ctx, logSeedTimeout)
	defer cancel()
	counts, err := rc.store.Counts(ctx, time.Time{})
	if err != nil {
		if ctx.Err() == nil {
			rc.logger.Warn("counting stored records for log_max", zap.Error(err))
		}
		return
	}
	for hook, byStatus := range counts {
		n := 0
		for _, k := range byStatus {
			n += k
		}
		rc.added(hook, n)
	}
}

func (rc *recorder) run() {
	batch := make([]*queue.Event, 0, logBatch)
	timer := time.NewTimer(logLinger)
	timer.Stop()
	for {
		select {
		case ev := <-rc.ch:
			batch = append(batch[:0], ev)
		case <-rc.wake:
			rc.trim()
			continue
		case <-rc.quit:
			rc.drain(batch[:0])
			return
		}
		if rc.gate != nil {
			select {
			case <-rc.gate:
			case <-rc.quit:
			}
		}
		// the batch gathers while the writer sleeps: a record handed over
		// meanwhile wakes no goroutine
		timer.Reset(logLinger)
		select {
		case <-timer.C:
		case <-rc.quit:
			timer.Stop()
		}
		for {
			batch = rc.take(batch)
			rc.write(batch, logWriteTimeout)
			clear(batch)
			if len(batch) < logBatch {
				break
			}
			batch = batch[:0]
		}
		rc.trim()
	}
}

// take adds the queued records to batch, up to logBatch, without waiting.
func (rc *recorder) take(batch []*queue.Event) []*queue.Event {
	for len(batch) < logBatch {
		select {
		case ev := <-rc.ch:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// drain writes every record still queued when the app stops.
func (rc *recorder) drain(batch []*queue.Event) {
	deadline := time.Now().Add(logStopTimeout)
	for {
		select {
		case ev := <-rc.ch:
			batch = append(batch, ev)
			if len(batch) < logBatch {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			return
		}
		rc.write(batch, max(time.Until(deadline), time.Millisecond))
		batch = batch[:0]
	}
}

// write stores one batch; records it cannot store are counted as dropped.
func (rc *recorder) write(batch []*queue.Event, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := rc.store.Record(ctx, batch)
	cancel()
	if err != nil {
		for _, ev := range batch {
			rc.drop(ev.Hook, 1)
		}
		rc.lost += len(batch)
		if time.Since(rc.lastWarn) >= logWarnEvery {
			rc.logger.Warn("run log records not written", zap.Int("records", rc.lost), zap.Error(err))
			rc.lastWarn, rc.lost = time.Now(), 0
		}
		return
	}
	for _, ev := range batch {
		rc.count(ev.Hook).n.Add(1)
	}
}

// trim removes the oldest records of every hook over its log_max.
func (rc *recorder) trim() {
	rc.counts.Range(func(key, value any) bool {
		hook, c := key.(string), value.(*hookCount)
		max := c.max.Load()
		if !over(c.n.Load(), max) {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), logTrimTimeout)
		removed, err := rc.store.Trim(ctx, hook, int(max))
		cancel()
		// what is left is log_max, or more that are still queued; after
		// an error, the next try waits for as many new records
		c.n.Store(max)
		if err != nil {
			rc.logger.Warn("trimming the run log to log_max", zap.String("hook", hook), zap.Error(err))
			return true
		}
		if removed > 0 {
			rc.logger.Debug("run log trimmed", zap.String("hook", hook), zap.Int("removed", removed), zap.Int64("log_max", max))
		}
		return true
	})
}
