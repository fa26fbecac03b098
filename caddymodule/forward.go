package caddymodule

import (
	"context"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-webhooks/gateway/forward"
)

// httpTarget is the sender of a forward action: an HTTP request to a URL
// template, through the handler's forward client.
type httpTarget struct {
	url      *forward.URLTemplate
	method   string
	headers  http.Header
	signer   forward.Signer
	insecure bool
}

func (t *httpTarget) verb() string { return "forward" }

// check resolves the URL; a path value that cannot be one plain segment is
// a *forward.PathValueError.
func (t *httpTarget) check(repl *caddy.Replacer) error {
	_, err := t.url.Resolve(repl.GetString)
	return err
}

func (t *httpTarget) send(ctx context.Context, h *Handler, a *action, o outbound, policy forward.Policy, first int) forward.Result {
	target, err := t.url.Resolve(o.repl.GetString)
	if err != nil {
		// checked when the event was accepted; an async event can meet a
		// changed config here
		return forward.Result{Err: err}
	}
	return h.client.Do(ctx, t.request(h, a, o, policy, first, target))
}

// request is the forward's request to target; its HTTPClient is nil, the
// forward client's own pool.
func (t *httpTarget) request(h *Handler, a *action, o outbound, policy forward.Policy, first int, target string) *forward.Request {
	return &forward.Request{
		ID:                 o.id,
		Method:             t.method,
		URL:                target,
		Header:             t.header(o.repl),
		Body:               o.body,
		Timeout:            a.timeout,
		Policy:             policy,
		Signer:             t.signer,
		InsecureSkipVerify: t.insecure,
		FirstAttempt:       first,
		Observe:            func(at forward.Attempt) { h.observeAttempt(a, o, at) },
	}
}

// header resolves the configured headers for one request.
func (t *httpTarget) header(repl *caddy.Replacer) http.Header {
	header := make(http.Header, len(t.headers))
	for name, vals := range t.headers {
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = headerSafe(repl.ReplaceKnown(v, ""))
		}
		header[name] = out
	}
	return header
}

func (t *httpTarget) answer(h *Handler, w http.ResponseWriter, r *http.Request, _ string, res forward.Result) error {
	return h.answerOne(w, r, res)
}

func (t *httpTarget) failure(res forward.Result) string {
	switch {
	case res.TimedOut:
		return "timed out"
	case res.Err != nil && res.Status == 0:
		return "unreachable"
	case res.Err != nil:
		return "retries exhausted, last status " + strconv.Itoa(res.Status)
	case !res.OK():
		return "upstream answered " + strconv.Itoa(res.Status)
	}
	return ""
}

func (t *httpTarget) describe(err error) string { return describeErr(err) }

// close has nothing to end: the forward client is the handler's, closed
// in Cleanup.
func (t *httpTarget) close() {}
