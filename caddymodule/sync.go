package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-webhooks/gateway/forward"
)

// actionSummary is one action's outcome in a fan-out answer.
type actionSummary struct {
	URL      string `json:"url"`
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

	reqs, err := h.requests(repl, id, doc, reshaped)
	if err != nil {
		return h.refuseURL(w, r, err)
	}
	results := make([]forward.Result, len(h.actions))
	if len(reqs) == 1 {
		results[0] = h.client.Do(ctx, reqs[0])
	} else {
		var wg sync.WaitGroup
		for i, req := range reqs {
			wg.Go(func() { results[i] = h.client.Do(ctx, req) })
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

	if len(results) == 1 {
		return h.answerOne(w, r, results[0])
	}
	return h.answerMany(w, id, results)
}

// requests builds the outbound request of every action, or none: a path
// placeholder whose value cannot be a path segment refuses the event
// (*forward.PathValueError) before anything is sent or stored.
func (h *Handler) requests(repl *caddy.Replacer, id string, doc, reshaped []byte) ([]*forward.Request, error) {
	reqs := make([]*forward.Request, len(h.actions))
	for i, a := range h.actions {
		req, err := h.request(a, repl, id, doc, reshaped)
		if err != nil {
			return nil, err
		}
		reqs[i] = req
	}
	return reqs, nil
}

// refuseURL answers 422 for a forward URL that cannot be built, naming the
// field (or placeholder) but never its value.
func (h *Handler) refuseURL(w http.ResponseWriter, r *http.Request, err error) error {
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

// request builds the outbound request of one action.
func (h *Handler) request(a *action, repl *caddy.Replacer, id string, doc, reshaped []byte) (*forward.Request, error) {
	body := reshaped
	if a.original {
		body = doc
	}
	header := make(http.Header, len(a.headers))
	for name, vals := range a.headers {
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = headerSafe(repl.ReplaceKnown(v, ""))
		}
		header[name] = out
	}
	u, err := a.url.Resolve(repl.GetString)
	if err != nil {
		return nil, err
	}
	return &forward.Request{
		ID:                 id,
		Method:             a.method,
		URL:                u,
		Header:             header,
		Body:               body,
		Timeout:            a.timeout,
		Policy:             a.policy,
		Signer:             a.signer,
		InsecureSkipVerify: a.insecure,
		Observe: func(at forward.Attempt) {
			h.metrics.attempts.WithLabelValues(h.name, a.label).Inc()
			if at.N > 1 {
				h.metrics.retries.WithLabelValues(h.name, a.label).Inc()
			}
			if ce := h.logger.Check(zapcore.DebugLevel, "forward attempt"); ce != nil {
				fields := []zap.Field{
					zap.String("hook", h.name), zap.String("id", id), zap.String("action", a.label),
					zap.Int("attempt", at.N), zap.Int("status", at.Status), zap.Duration("duration", at.Duration),
					zap.Duration("next_delay", at.Delay),
				}
				if at.Err != nil {
					fields = append(fields, zap.String("error", describeErr(at.Err)))
				}
				ce.Write(fields...)
			}
		},
	}, nil
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
	h.metrics.forwarded.WithLabelValues(h.name, a.label, statusClass(res)).Inc()
	h.metrics.latency.WithLabelValues(h.name, a.label).Observe(res.Duration.Seconds())
	if !res.OK() {
		fields := []zap.Field{
			zap.String("hook", h.name), zap.String("action", a.label),
			zap.Int("attempts", res.Attempts), zap.Int("status", res.Status), zap.Bool("timed_out", res.TimedOut),
		}
		if res.Err != nil {
			fields = append(fields, zap.String("error", describeErr(res.Err)))
		}
		h.logger.Warn("forward gave up", fields...)
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
			zap.String("action", h.actions[0].label), zap.Int("status", res.Status))
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

// answerMany answers a fan-out: 200 when every action ended 2xx, else 502,
// with one summary per action.
func (h *Handler) answerMany(w http.ResponseWriter, id string, results []forward.Result) error {
	out := fanOutBody{ID: id, Status: "delivered", Actions: make([]actionSummary, len(results))}
	status := http.StatusOK
	for i, res := range results {
		s := actionSummary{URL: h.actions[i].label, Status: res.Status, Attempts: res.Attempts}
		switch {
		case res.TimedOut:
			s.Error = "timed out"
		case res.Err != nil && res.Status == 0:
			s.Error = "unreachable"
		case res.Err != nil:
			s.Error = "retries exhausted, last status " + strconv.Itoa(res.Status)
		case !res.OK():
			s.Error = "upstream answered " + strconv.Itoa(res.Status)
		}
		if s.Error != "" {
			status = http.StatusBadGateway
			out.Status = "failed"
		}
		out.Actions[i] = s
	}
	writeJSON(w, status, out)
	return nil
}
