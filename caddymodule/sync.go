package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/forward"
)

// actionSummary is one action's outcome in a fan-out answer. It names the
// action, never its URL, which may carry a credential in its path.
type actionSummary struct {
	Action   string `json:"action"`
	Status   int    `json:"status,omitempty"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

type fanOutBody struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Actions []actionSummary `json:"actions"`
}

// forwardSync delivers the event to every action while the sender waits.
// One action answers like a proxy; several answer with a summary.
func (h *Handler) forwardSync(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id string, doc, reshaped []byte) error {
	ctx, cancel := h.deadlineContext(r)
	defer cancel()

	if err := h.checkTargets(repl); err != nil {
		return h.refuseURL(w, r, err)
	}
	rec := recordOf(r)
	traces := rec.traces(h.actions, h.now)
	results := make([]forward.Result, len(h.actions))
	if len(h.actions) == 1 {
		a := h.actions[0]
		results[0] = h.send(ctx, a, outbound{id: id, body: a.body(doc, reshaped), repl: repl, trace: traces[0]}, a.policy, 1)
	} else {
		var wg sync.WaitGroup
		for i, a := range h.actions {
			o := outbound{id: id, body: a.body(doc, reshaped), repl: repl, trace: traces[i]}
			wg.Go(func() { results[i] = h.send(ctx, a, o, a.policy, 1) })
		}
		wg.Wait()
	}

	attempts := 0
	for i, res := range results {
		attempts += res.Attempts
		h.observe(h.actions[i], res)
	}
	repl.Set(phAttempts, attempts)
	repl.Set(phUpstreamStatus, results[len(results)-1].Status)

	if rec == nil {
		return h.answerSync(w, r, id, results)
	}
	sw := rec.statusWriter(w)
	err := h.answerSync(sw, r, id, results)
	status := answered(sw.status, err)
	rec.forget()
	h.recordSync(rec, repl, status, doc, reshaped, results, traces)
	return err
}

// answerSync answers the sender once every action is done.
func (h *Handler) answerSync(w http.ResponseWriter, r *http.Request, id string, results []forward.Result) error {
	if len(results) == 1 {
		return h.actions[0].sender.answer(h, w, r, id, results[0])
	}
	return h.answerMany(w, id, results)
}

// maxAnswerText is forward.DefaultMaxResponseBytes, as written in errors.
const maxAnswerText = "1 MiB"

// answerOne answers the sender like a proxy: the upstream's status,
// headers and body, unless retries were exhausted (502), time ran out
// (504) or the body is larger than the client keeps (502).
func (h *Handler) answerOne(w http.ResponseWriter, r *http.Request, res forward.Result) error {
	switch {
	case res.TimedOut:
		return h.fail(w, r, http.StatusGatewayTimeout, errors.New("upstream timed out"))
	case res.Err != nil || res.Status == 0:
		msg := fmt.Sprintf("upstream failed after %d attempts", res.Attempts)
		if res.Status != 0 {
			msg += fmt.Sprintf(" (last status %d)", res.Status)
		}
		return h.fail(w, r, http.StatusBadGateway, errors.New(msg))
	case res.TooLarge:
		// never a cut body under the upstream's status
		h.logger.Warn("upstream answer too large to pass on", zap.String("hook", h.name),
			zap.String("action", h.actions[0].name), zap.Int("status", res.Status))
		return h.fail(w, r, http.StatusBadGateway, fmt.Errorf("upstream answered %d with a body larger than %s, which is not passed on", res.Status, maxAnswerText))
	}
	hdr := w.Header()
	for name, vals := range res.Header {
		hdr[name] = vals
	}
	hdr.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(res.Status)
	_, _ = w.Write(res.Body)
	return nil
}

// answerMany answers a fan-out: 200 when every action ended 2xx (a
// confirmed publish counts as 202), else 502, with one summary per action.
func (h *Handler) answerMany(w http.ResponseWriter, id string, results []forward.Result) error {
	out := fanOutBody{ID: id, Status: "delivered", Actions: make([]actionSummary, len(results))}
	status := http.StatusOK
	for i, res := range results {
		s := actionSummary{Action: h.actions[i].name, Status: res.Status, Attempts: res.Attempts, Error: h.actions[i].sender.failure(res)}
		if s.Error != "" {
			status = http.StatusBadGateway
			out.Status = "failed"
		}
		out.Actions[i] = s
	}
	writeJSON(w, status, out)
	return nil
}
