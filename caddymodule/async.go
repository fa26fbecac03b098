package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/queue"
)

// acceptedBody is the answer to an accepted async event.
type acceptedBody struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// enqueue stores one record per action in one durable write, then answers
// 202; 200 duplicate when the id was stored before within the dedup
// window; 503 when the store cannot write. When idle workers are free the
// records are written already leased and handed to them directly, so a
// queue that keeps up never reads its own writes back.
func (h *Handler) enqueue(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id string, received time.Time, doc, reshaped []byte) error {
	if err := h.checkTargets(repl); err != nil {
		return h.refuseURL(w, r, err)
	}
	evs := make([]*queue.Event, len(h.actions))
	for i, a := range h.actions {
		evs[i] = &queue.Event{
			ID:         id,
			Hook:       h.name,
			Action:     i,
			Values:     a.values(repl),
			Body:       a.body(doc, reshaped),
			ReceivedAt: received,
		}
	}
	rec := recordOf(r)
	method, _ := repl.GetString(phAuth)
	h.logAsync(evs, rec, method)
	opts := queue.EnqueueOptions{Dedup: h.dedupWindow}
	reserved := h.app.reserve(len(evs))
	if reserved {
		opts.LeaseFor = h.app.leaseDuration()
	}
	err := h.app.store.Enqueue(r.Context(), evs, opts)
	h.app.handOff(evs, reserved, err == nil)
	switch {
	case errors.Is(err, queue.ErrDuplicate):
		h.recordDuplicate(rec)
		writeJSON(w, http.StatusOK, acceptedBody{ID: id, Status: "duplicate"})
		return nil
	case err != nil:
		h.metrics.rejected.WithLabelValues(h.name, reasonStore).Inc()
		h.recordRejected(r, http.StatusServiceUnavailable, "event store unavailable")
		h.logger.Error("event store cannot write", zap.String("hook", h.name), zap.String("id", id), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return h.fail(w, r, http.StatusServiceUnavailable, errors.New("event store unavailable, retry later"))
	}
	h.app.stored(h.name, len(evs))
	writeJSON(w, http.StatusAccepted, acceptedBody{ID: id, Status: string(queue.StatusQueued)})
	return nil
}

// deliver makes one attempt at a leased event and records its outcome:
// delivered, retried later on the action's schedule, or dead. The request
// is built from the running config and the event's stored values.
func (a *App) deliver(ctx context.Context, ev *queue.Event) {
	h := a.handler(ev.Hook)
	if h == nil || ev.Action < 0 || ev.Action >= len(h.actions) {
		a.orphaned(ev)
		return
	}
	act := h.actions[ev.Action]
	n := len(ev.Attempts) + 1
	policy := act.asyncPolicy()
	single := policy
	single.Retries = 0
	res := h.send(ctx, act, outbound{id: ev.ID, body: ev.Body, repl: replayReplacer(ev.Values)}, single, n)
	if ctx.Err() != nil {
		a.release(ev) // cancelled by Stop: no outcome to record
		return
	}
	at := queue.Attempt{At: a.now(), Status: res.Status, Latency: res.Duration, Error: attemptError(res)}

	// the outcome is recorded even if Stop comes now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease := queue.LeaseOf(ev)
	var err error
	switch {
	case res.OK():
		err = a.store.Ack(ctx, lease, at)
		h.observe(act, res)
	case n <= policy.Retries && !permanent(res.Err) && (res.Status == 0 || policy.Retryable(res.Status, nil)):
		var retryAfter time.Duration
		if ra := res.Header.Get("Retry-After"); ra != "" {
			retryAfter, _ = forward.ParseRetryAfter(ra, a.now())
		}
		err = a.store.Retry(ctx, lease, at, policy.Delay(n, retryAfter))
	default:
		if n <= policy.Retries {
			at.Error += " (not retried)"
		} else {
			at.Error += fmt.Sprintf(" (last of %d attempts)", n)
		}
		err = a.store.Dead(ctx, lease, at)
		if err == nil {
			h.metrics.dead.WithLabelValues(h.name).Inc()
		}
		h.observe(act, res)
	}
	a.recorded(ev, err)
}

// permanent: an attempt that failed before anything was sent and would
// fail the same way again (the running config's URL cannot take the
// event's stored path values).
func permanent(err error) bool {
	var pe *forward.PathValueError
	var re *routeError
	return errors.As(err, &pe) || errors.As(err, &re)
}

// recorded logs an outcome the store refused. A stale lease means the
// event was leased again after this lease expired (the attempt took longer
// than the lease) or replayed; the newer lease decides its fate.
func (a *App) recorded(ev *queue.Event, err error) {
	switch {
	case err == nil:
	case errors.Is(err, queue.ErrStaleLease):
		a.logger.Warn("outcome not recorded: the event's lease is no longer current",
			zap.String("hook", ev.Hook), zap.String("id", ev.ID), zap.String("key", ev.Key))
	default:
		a.logger.Error("recording delivery outcome", zap.String("hook", ev.Hook), zap.String("id", ev.ID), zap.String("key", ev.Key), zap.Error(err))
	}
}

// Deferral of events whose hook is not in the running config: the first
// waits deferFirst, each next one twice as long up to deferMax.
const (
	deferFirst = 2 * time.Second
	deferMax   = 5 * time.Minute
)

func deferDelay(n int) time.Duration {
	d := deferFirst
	for range n {
		d *= 2
		if d >= deferMax {
			return deferMax
		}
	}
	return d
}

// deferredFor is how long an event has waited over n deferrals.
func deferredFor(n int) time.Duration {
	var total time.Duration
	for i := range n {
		d := deferDelay(i)
		if d == deferMax {
			return total + time.Duration(n-i)*deferMax
		}
		total += d
	}
	return total
}

// orphaned handles an event that no handler of the running config
// delivers (its hook was removed or renamed, or the config is reloading):
// it is deferred, which is not an attempt, with a growing delay, and goes
// dead with the reason once it has waited orphan_after.
func (a *App) orphaned(ev *queue.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease := queue.LeaseOf(ev)
	if deferredFor(ev.Deferrals) >= a.orphanAfter {
		reason := fmt.Sprintf("no hook %q with action %d in the running config for %s: given up", ev.Hook, ev.Action, a.orphanAfter)
		a.recorded(ev, a.store.Dead(ctx, lease, queue.Attempt{At: a.now(), Error: reason}))
		a.logger.Warn("event given up: its hook is not in the running config",
			zap.String("hook", ev.Hook), zap.String("id", ev.ID), zap.Duration("orphan_after", a.orphanAfter))
		return
	}
	a.recorded(ev, a.store.Defer(ctx, lease, deferDelay(ev.Deferrals)))
}

// asyncPolicy is the retry policy of an action in async mode: its own
// retries and backoff when configured, else the long default schedule.
func (act *action) asyncPolicy() forward.Policy {
	p := act.policy
	if !act.customRetry {
		p.Retries = len(DefaultSchedule)
		p.Schedule = DefaultSchedule
	}
	return p
}
