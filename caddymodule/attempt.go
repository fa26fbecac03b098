package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-webhooks/gateway/forward"
)

// outbound is what one action's request is made of that was decided when
// the event was accepted: the event id, the body, and the per-request
// placeholder values. Everything else (method, URL template, static
// headers, signer, TLS settings, timeout) comes from the running config,
// in sync and async mode alike.
type outbound struct {
	id   string
	body []byte
	repl *caddy.Replacer // resolves the URL's and headers' placeholders
	// trace, in sync mode, collects the attempts for the run log
	trace *attemptTrace
}

// A sender is what differs between the kinds of action: a forward to an
// HTTP upstream (*httpTarget), a publish to a broker (*brokerTarget) and
// the request-reply callback (*callbackTarget). What they share (body,
// retry policy, metrics, logs, the run log's trace) is the action's.
type sender interface {
	// verb names the kind in logs: "forward" or "publish".
	verb() string
	// check resolves the target (URL, exchange and routing key, subject)
	// of one request; an error names what cannot be built, not the value.
	check(repl *caddy.Replacer) error
	// send makes the attempts of a under policy, numbering the first one
	// first, and reports each to h.observeAttempt.
	send(ctx context.Context, h *Handler, a *action, o outbound, policy forward.Policy, first int) forward.Result
	// answer answers a sync request whose one action this is.
	answer(h *Handler, w http.ResponseWriter, r *http.Request, id string, res forward.Result) error
	// failure says why an outcome failed, for a fan-out summary: "" when
	// it did not.
	failure(res forward.Result) string
	// describe says why an attempt failed with err, for the run log.
	describe(err error) string
	// close ends the connections the action holds.
	close()
}

// send makes the attempts of one action under policy, numbering the first
// one first. Sync mode passes the action's policy (every retry within the
// deadline); async mode passes one attempt and records the outcome itself.
// This is the only place an outbound request or publish is made, so an
// action's option means the same in both modes.
func (h *Handler) send(ctx context.Context, a *action, o outbound, policy forward.Policy, first int) forward.Result {
	return a.sender.send(ctx, h, a, o, policy, first)
}

// observeAttempt records one attempt of an action in metrics, the debug
// log and, in sync mode, the trace for the run log.
func (h *Handler) observeAttempt(a *action, o outbound, at forward.Attempt) {
	h.metrics.attempts.WithLabelValues(h.name, a.name).Inc()
	if at.N > 1 {
		h.metrics.retries.WithLabelValues(h.name, a.name).Inc()
	}
	if ce := h.logger.Check(zapcore.DebugLevel, a.sender.verb()+" attempt"); ce != nil {
		fields := []zap.Field{
			zap.String("hook", h.name), zap.String("id", o.id), zap.String("action", a.name),
			zap.Int("attempt", at.N), zap.Int("status", at.Status), zap.Duration("duration", at.Duration),
			zap.Duration("next_delay", at.Delay),
		}
		if at.Err != nil {
			fields = append(fields, zap.String("error", describeErr(at.Err)))
		}
		ce.Write(fields...)
	}
	o.trace.add(at)
}

// checkTargets resolves every action's target before anything is sent or
// stored, so a refused value refuses the whole event.
func (h *Handler) checkTargets(repl *caddy.Replacer) error {
	for _, a := range h.actions {
		if err := a.sender.check(repl); err != nil {
			return err
		}
	}
	return nil
}

// refuseURL answers 422 for a forward URL that cannot be built, naming the
// field (or placeholder) but never its value.
func (h *Handler) refuseURL(w http.ResponseWriter, r *http.Request, err error) error {
	var re *routeError
	if errors.As(err, &re) {
		return h.reject(w, r, http.StatusUnprocessableEntity, reasonMapping, re.Error(), nil)
	}
	var pe *forward.PathValueError
	if !errors.As(err, &pe) {
		return h.reject(w, r, http.StatusUnprocessableEntity, reasonMapping, "forward url could not be built", err)
	}
	what := "placeholder {" + pe.Key + "}"
	if path, ok := strings.CutPrefix(pe.Key, phJSON); ok {
		what = "field " + strconv.Quote(path)
	}
	return h.reject(w, r, http.StatusUnprocessableEntity, reasonMapping,
		what+" cannot be a URL path segment: its value "+pe.Reason, nil)
}

// values are the per-request placeholder values the action's URL and
// headers use, read from the request's replacer when the event is
// accepted: what an async event stores so that a later attempt builds the
// same request. Values that the replacer does not know are left out, and
// the placeholder stays as written, as in sync mode.
func (a *action) values(repl *caddy.Replacer) map[string]string {
	if len(a.keys) == 0 {
		return nil
	}
	out := make(map[string]string, len(a.keys))
	for _, k := range a.keys {
		if v, ok := repl.GetString(k); ok {
			out[k] = v
		}
	}
	return out
}

// replayReplacer resolves exactly the stored values of an event.
func replayReplacer(values map[string]string) *caddy.Replacer {
	repl := caddy.NewEmptyReplacer()
	repl.Map(func(key string) (any, bool) {
		v, ok := values[key]
		return v, ok
	})
	return repl
}

// placeholderKeys lists the {placeholder} keys of a template, each once.
func placeholderKeys(s string, into []string) []string {
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			return into
		}
		if i > 0 && s[i-1] == '\\' {
			s = s[i+1:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return into
		}
		key := s[i+1 : i+end]
		if key != "" && !strings.ContainsAny(key, " \t\n{") && !slices.Contains(into, key) {
			into = append(into, key)
		}
		s = s[i+end+1:]
	}
}

// attemptError is what an attempt's record says about a failed outcome.
func attemptError(res forward.Result) string {
	switch {
	case res.TimedOut:
		return "timed out"
	case res.Status == 0 && res.Err != nil:
		return describeErr(res.Err)
	case res.Status == 0:
		return "no response"
	case !res.OK():
		return "upstream answered " + strconv.Itoa(res.Status)
	}
	return ""
}

// body is what the action sends: the received document or the reshaped one.
func (a *action) body(doc, reshaped []byte) []byte {
	if a.original {
		return doc
	}
	return reshaped
}

// headerSafe drops control characters a placeholder value may carry, so a
// payload value cannot split or break an outbound header.
func headerSafe(v string) string {
	if !strings.ContainsFunc(v, isControl) {
		return v
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, v)
}

func isControl(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }

// observe records the outcome of one action in metrics and logs.
func (h *Handler) observe(a *action, res forward.Result) {
	h.metrics.forwarded.WithLabelValues(h.name, a.name, statusClass(res)).Inc()
	h.metrics.latency.WithLabelValues(h.name, a.name).Observe(res.Duration.Seconds())
	if !res.OK() {
		fields := []zap.Field{
			zap.String("hook", h.name), zap.String("action", a.name),
			zap.Int("attempts", res.Attempts), zap.Int("status", res.Status), zap.Bool("timed_out", res.TimedOut),
		}
		if res.Err != nil {
			fields = append(fields, zap.String("error", describeErr(res.Err)))
		}
		h.logger.Warn(a.sender.verb()+" gave up", fields...)
	}
}

// describeErr is an error's text without the request URL, which may carry
// a credential in its query.
func describeErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

func statusClass(res forward.Result) string {
	switch {
	case res.TimedOut:
		return "timeout"
	case res.Status == 0:
		return "error"
	default:
		return strconv.Itoa(res.Status/100) + "xx"
	}
}
