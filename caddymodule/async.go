package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/queue"
)

// Reserved keys of a stored event's Header map: what was resolved when the
// event was accepted. Real header names cannot start with a colon.
const (
	metaURL    = ":url"
	metaMethod = ":method"
	metaAction = ":action"
	metaEvent  = ":event"
)

// acceptedBody is the answer to an accepted async event.
type acceptedBody struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// enqueue stores one event per action durably, then answers 202 with the
// event's Location; 200 duplicate when every action was stored before
// within the dedup window; 503 when the store cannot write.
func (h *Handler) enqueue(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id string, doc, reshaped []byte) error {
	reqs, err := h.requests(repl, id, doc, reshaped)
	if err != nil {
		return h.refuseURL(w, r, err)
	}
	stored := 0
	for i, req := range reqs {
		ev := &queue.Event{
			ID:      storeID(id, i),
			Hook:    h.name,
			Payload: req.Body,
			Header:  flattenHeader(req.Header),
		}
		ev.Header[metaURL] = req.URL
		ev.Header[metaMethod] = req.Method
		ev.Header[metaAction] = strconv.Itoa(i)
		ev.Header[metaEvent] = id
		err := h.app.store.Enqueue(r.Context(), ev, h.dedupWindow)
		switch {
		case errors.Is(err, queue.ErrDuplicate):
		case err != nil:
			h.metrics.rejected.WithLabelValues(h.name, reasonStore).Inc()
			h.logger.Error("event store cannot write", zap.String("hook", h.name), zap.String("id", id), zap.Error(err))
			w.Header().Set("Retry-After", "5")
			return h.fail(w, r, http.StatusServiceUnavailable, errors.New("event store unavailable, retry later"))
		default:
			stored++
		}
	}
	if stored == 0 {
		writeJSON(w, http.StatusOK, acceptedBody{ID: id, Status: "duplicate"})
		return nil
	}
	h.app.notify()
	// The event in the admin API of Caddy's admin endpoint.
	w.Header().Set("Location", "/webhook_gateway/event?"+url.Values{"hook": {h.name}, "id": {id}}.Encode())
	writeJSON(w, http.StatusAccepted, acceptedBody{ID: id, Status: "queued"})
	return nil
}

// storeID keys the stored event of action i: the event id for the first
// action, the id with the action number after it for the others.
func storeID(id string, action int) string {
	if action == 0 {
		return id
	}
	return id + "." + strconv.Itoa(action)
}

func flattenHeader(h http.Header) map[string]string {
	out := make(map[string]string, len(h)+4)
	for k, v := range h {
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// errUnrouted is the attempt recorded when no handler of the running
// config delivers an event's hook (a config change, or the short overlap of
// two configs during a reload).
const errUnrouted = "no handler for this hook in the running config"

// deliver makes one attempt at a leased event and records its outcome:
// delivered, retried later on the action's schedule, or dead.
func (a *App) deliver(ctx context.Context, ev *queue.Event) {
	h := a.handler(ev.Hook)
	idx, _ := strconv.Atoi(ev.Header[metaAction])
	if h == nil || idx >= len(h.actions) {
		// No handler of the running config delivers this event: keep it.
		err := a.store.Retry(ctx, ev.Hook, ev.ID, queue.Attempt{At: a.now(), Error: errUnrouted}, unroutedDelay)
		if err != nil {
			a.logger.Warn("deferring unrouted event", zap.String("hook", ev.Hook), zap.String("id", ev.ID), zap.Error(err))
		}
		return
	}
	act := h.actions[idx]
	header := http.Header{}
	for k, v := range ev.Header {
		if !strings.HasPrefix(k, ":") {
			header.Set(k, v)
		}
	}
	n := 1 // this attempt's number: deferrals for want of a handler do not count
	for _, at := range ev.Attempts {
		if at.Error != errUnrouted {
			n++
		}
	}
	policy := act.asyncPolicy()
	single := policy
	single.Retries = 0
	res := h.client.Do(ctx, &forward.Request{
		ID:                 ev.Header[metaEvent],
		Method:             ev.Header[metaMethod],
		URL:                ev.Header[metaURL],
		Header:             header,
		Body:               ev.Payload,
		Timeout:            act.timeout,
		Policy:             single,
		Signer:             act.signer,
		InsecureSkipVerify: act.insecure,
		FirstAttempt:       n,
	})
	if ctx.Err() != nil {
		a.release(ev) // cancelled by Stop: no outcome to record
		return
	}
	at := queue.Attempt{At: a.now(), Status: res.Status, Latency: res.Duration}
	if res.Err != nil {
		at.Error = describeErr(res.Err)
	} else if !res.OK() {
		at.Error = "upstream answered " + strconv.Itoa(res.Status)
	}
	h.metrics.attempts.WithLabelValues(h.name, act.label).Inc()
	if n > 1 {
		h.metrics.retries.WithLabelValues(h.name, act.label).Inc()
	}

	// the outcome is recorded even if Stop comes now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch {
	case res.OK():
		err = a.store.Ack(ctx, ev.Hook, ev.ID, at)
		h.observe(act, res)
	case n <= policy.Retries && (res.Err != nil || policy.Retryable(res.Status, nil)):
		var retryAfter time.Duration
		if ra := res.Header.Get("Retry-After"); ra != "" {
			retryAfter, _ = forward.ParseRetryAfter(ra, a.now())
		}
		err = a.store.Retry(ctx, ev.Hook, ev.ID, at, policy.Delay(n, retryAfter))
	default:
		err = a.store.Dead(ctx, ev.Hook, ev.ID, at)
		h.metrics.dead.WithLabelValues(h.name).Inc()
		h.observe(act, res)
	}
	if err != nil {
		a.logger.Error("recording delivery outcome", zap.String("hook", ev.Hook), zap.String("id", ev.ID), zap.Error(err))
	}
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
