package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/queue"
	"github.com/caddy-webhooks/gateway/reply"
	"github.com/caddy-webhooks/gateway/verify"
)

// ReplyConfig turns an async hook into request-reply: the sender names a
// callback URL, gets 202 at once, is called back with ?id=<secret> when
// the hook's one forward action has its final answer, and fetches that
// answer with GET <fetch>?id=<secret> and the hook's own auth.
//
// Caddyfile, inside webhook_gateway (which needs mode async and exactly
// one forward):
//
//	reply {
//		callback <placeholder>        # e.g. {json.webhook_url} or {http.request.header.X-Callback-Url}
//		allow <pattern...>            # host names, *.domain, IPs, CIDRs; default: public addresses only
//		method <method>               # default GET
//		fetch <path>                  # GET <path>?id=<secret> answers the result
//		retain <duration>             # default 24h
//		tls_trusted_ca_certs <pem...> # roots for callbacks to a private CA
//		sign standard|github|hmac <secret> [{ ... }]
//	}
type ReplyConfig struct {
	// Callback is a placeholder template resolved per request that yields
	// the caller's callback URL. It must be https://, without userinfo,
	// and its host public or allowed, else the request gets 400 and
	// nothing is stored. {json.<path>} is short for
	// {http.webhook_gateway.json.<path>}.
	Callback string `json:"callback"`

	// Allow lists the callback destinations permitted beyond public
	// addresses: exact host names, "*.example.com" (any subdomain),
	// IP addresses and CIDR ranges. Addresses are checked when dialling,
	// after DNS resolution, on every connection.
	Allow []string `json:"allow,omitempty"`

	// Method of the callback request. Default: GET. Methods other than
	// GET and HEAD carry a small JSON body with the event id and the
	// upstream's status (never the secret).
	Method string `json:"method,omitempty"`

	// Fetch is the path on this site where GET <fetch>?id=<secret>, with
	// the hook's auth, returns the stored result. The hook's matcher must
	// match it.
	Fetch string `json:"fetch"`

	// Retain is how long a result can be fetched. Default: 24h.
	Retain caddy.Duration `json:"retain,omitempty"`

	// TLSTrustedCACerts are PEM files of the roots that callback servers'
	// certificates are checked against. Default: the system's roots.
	TLSTrustedCACerts []string `json:"tls_trusted_ca_certs,omitempty"`

	// Sign signs every callback attempt, so the caller can tell it came
	// from the gateway.
	Sign *SignConfig `json:"sign,omitempty"`
}

const (
	defaultReplyRetain = 24 * time.Hour
	// reasonCallback labels requests refused for their callback URL.
	reasonCallback = "callback"
	// callbackName names the callback action in metrics, logs and the
	// admin API.
	callbackName = "callback"
	// Keys of the callback URL and the secret id in a stored event's
	// Values. They hold a space, so no placeholder in a template can name
	// them, and the admin API never shows Values.
	valueCallback = "reply callback"
	valueSecret   = "reply secret"
	// HeaderUpstreamStatus carries a fetched result's upstream status.
	HeaderUpstreamStatus = "Webhook-Upstream-Status"
)

// replier is a provisioned ReplyConfig.
type replier struct {
	callback string // template
	allow    *reply.Allow
	method   string // of the callback request
	fetch    string
	retain   time.Duration
	action   *action // the callback, numbered after the hook's actions
	results  queue.Results
}

// provisionReply checks the reply block against the rest of the hook and
// builds the callback action; called after the hook's actions are built.
func (h *Handler) provisionReply(repl *caddy.Replacer) error {
	c := h.Reply
	if c == nil {
		return nil
	}
	switch {
	case h.Mode != "async":
		return errors.New("reply needs mode async: the sender gets 202 and is called back later")
	case len(h.Forward) != 1 || len(h.Publish) != 0:
		return fmt.Errorf("reply needs exactly one action, a forward, whose answer is the result (this hook has %d forward and %d publish)", len(h.Forward), len(h.Publish))
	case strings.TrimSpace(c.Callback) == "":
		return errors.New("reply needs a callback placeholder, e.g. callback {json.webhook_url}")
	case c.Fetch == "":
		return errors.New("reply needs a fetch path, e.g. fetch /webhook")
	case !strings.HasPrefix(c.Fetch, "/") || strings.ContainsAny(c.Fetch, "?#{} \t"):
		return fmt.Errorf("reply: fetch must be a plain path starting with /, not %q", c.Fetch)
	case c.Retain < 0:
		return errors.New("reply: retain must not be negative")
	case h.actions[0].name == callbackName:
		return fmt.Errorf("reply: the forward action cannot be named %q, which names the callback", callbackName)
	}
	allow, err := reply.ParseAllow(c.Allow)
	if err != nil {
		return fmt.Errorf("reply: allow: %w", err)
	}
	var files []string
	for _, f := range c.TLSTrustedCACerts {
		files = append(files, repl.ReplaceKnown(f, ""))
	}
	var opts reply.ClientOptions
	opts.Allow = allow
	if len(files) > 0 {
		if opts.RootCAs, err = reply.LoadCAs(files); err != nil {
			return fmt.Errorf("reply: tls_trusted_ca_certs: %w", err)
		}
	}
	method := strings.ToUpper(c.Method)
	if method == "" {
		method = http.MethodGet
	}
	// built as a forward's, so that method and signer are checked as for
	// any forward; the URL comes from the event
	fwd, err := (&ForwardConfig{URL: "https://callback.invalid/", Method: method}).target(repl)
	if err == nil {
		fwd.signer, err = c.Sign.signer(repl)
	}
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	if !callbackHasBody(method) {
		fwd.headers.Del("Content-Type")
	}
	// retried on the result action's schedule
	result := h.actions[0]
	act := &action{
		name:        callbackName,
		sender:      &callbackTarget{httpTarget: fwd, allow: allow, client: reply.NewClient(opts)},
		timeout:     defaultTimeout,
		policy:      result.policy,
		customRetry: result.customRetry,
	}
	act.policy.RetryOn = forward.DefaultRetryOn()

	retain := time.Duration(c.Retain)
	if retain == 0 {
		retain = defaultReplyRetain
	}
	h.reply = &replier{
		callback: expandJSONShorthand(c.Callback),
		allow:    allow,
		method:   method,
		fetch:    c.Fetch,
		retain:   retain,
		action:   act,
	}
	return nil
}

// bindResults finds the results of the app's store; called once the
// store is open.
func (h *Handler) bindResults() error {
	if h.reply == nil {
		return nil
	}
	rs, ok := h.app.store.(queue.Results)
	if !ok {
		return errors.New("reply: the event store cannot keep results")
	}
	h.reply.results = rs
	return nil
}

// resultBound is the largest upstream answer the hook keeps: max_size for
// a request-reply hook (its answer is the result), else the client's
// default.
func (h *Handler) resultBound() int64 {
	if h.Reply != nil {
		return h.maxSize
	}
	return 0
}

func callbackHasBody(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

// actionAt is the action that delivers stored records numbered i: the
// hook's actions, then the callback of a request-reply hook; nil when the
// running config has none (nil h included).
func (h *Handler) actionAt(i int) *action {
	switch {
	case h == nil || i < 0:
		return nil
	case i < len(h.actions):
		return h.actions[i]
	case i == len(h.actions) && h.reply != nil:
		return h.reply.action
	}
	return nil
}

// callbackTarget is the sender of the request-reply callback: a forward
// to the caller's callback URL with the secret id, through the client
// that checks every address it dials.
type callbackTarget struct {
	*httpTarget // method, headers, signer
	allow       *reply.Allow
	client      *http.Client
}

func (c *callbackTarget) check(repl *caddy.Replacer) error {
	_, err := c.target(repl)
	return err
}

func (c *callbackTarget) send(ctx context.Context, h *Handler, a *action, o outbound, policy forward.Policy, first int) forward.Result {
	target, err := c.target(o.repl)
	if err != nil {
		return forward.Result{Err: err}
	}
	req := c.request(h, a, o, policy, first, target)
	req.HTTPClient = c.client
	return h.client.Do(ctx, req)
}

// target is the event's callback URL with the secret id.
func (c *callbackTarget) target(repl *caddy.Replacer) (string, error) {
	cb, _ := repl.GetString(valueCallback)
	secret, _ := repl.GetString(valueSecret)
	if secret == "" {
		return "", &routeError{"callback URL", "the stored event has no secret id"}
	}
	// checked again under the running config's allow list
	if _, err := reply.CheckURL(cb, c.allow); err != nil {
		return "", &routeError{"callback URL", err.Error()}
	}
	u, err := reply.WithID(cb, secret)
	if err != nil {
		return "", &routeError{"callback URL", "the secret id cannot be added"}
	}
	return u, nil
}

// close closes the idle connections of the callback client.
func (c *callbackTarget) close() { c.client.CloseIdleConnections() }

// replyValues resolves and checks the callback URL of an accepted request
// and draws its secret id: the values the result record keeps. nil, nil
// for a hook without reply; a *reply.URLError names the rule that failed.
func (h *Handler) replyValues(repl *caddy.Replacer) (map[string]string, error) {
	if h.reply == nil {
		return nil, nil
	}
	cb := strings.TrimSpace(repl.ReplaceAll(h.reply.callback, ""))
	if _, err := reply.CheckURL(cb, h.reply.allow); err != nil {
		return nil, err
	}
	secret, err := reply.NewSecret()
	if err != nil {
		return nil, err
	}
	return map[string]string{valueCallback: cb, valueSecret: secret}, nil
}

// refuseCallback answers a request whose callback URL is refused: 400
// naming the rule (never the URL), or 500 when no secret could be drawn.
func (h *Handler) refuseCallback(w http.ResponseWriter, r *http.Request, err error) error {
	var ue *reply.URLError
	if errors.As(err, &ue) {
		return h.reject(w, r, http.StatusBadRequest, reasonCallback, ue.Error(), nil)
	}
	h.logger.Error("drawing a secret id", zap.String("hook", h.name), zap.Error(err))
	return h.fail(w, r, http.StatusInternalServerError, errors.New("internal error"))
}

// withReply adds the reply values to the record of the result action.
func withReply(values, rv map[string]string, action int) map[string]string {
	if rv == nil || action != 0 {
		return values
	}
	out := make(map[string]string, len(values)+len(rv))
	for k, v := range values {
		out[k] = v
	}
	for k, v := range rv {
		out[k] = v
	}
	return out
}

// settle runs when the result action of a request-reply hook has its
// final outcome (n attempts): the result is stored, then the callback is
// queued as its own record, before the caller records the outcome, so a
// crash at any point gives one more callback, never none. Other records
// settle with nothing to do.
func (h *Handler) settle(ctx context.Context, ev *queue.Event, res forward.Result, n int) error {
	if h.reply == nil || ev.Action != 0 {
		return nil
	}
	secret := ev.Values[valueSecret]
	if secret == "" {
		return nil // stored before reply was configured: no caller to call back
	}
	now := h.now()
	result := h.resultOf(ev, res, n)
	result.StoredAt, result.ExpiresAt = now, now.Add(h.reply.retain)
	if err := h.reply.results.PutResult(ctx, secret, result); err != nil {
		return fmt.Errorf("storing the result: %w", err)
	}
	var body []byte
	if callbackHasBody(h.reply.method) {
		body, _ = json.Marshal(callbackBody{ID: ev.ID, UpstreamStatus: result.Status})
	}
	cb := &queue.Event{
		ID:         ev.ID,
		Hook:       ev.Hook,
		Action:     len(h.actions),
		Values:     map[string]string{valueCallback: ev.Values[valueCallback], valueSecret: secret},
		Body:       body,
		ReceivedAt: ev.ReceivedAt,
	}
	if err := h.app.store.Enqueue(ctx, []*queue.Event{cb}, queue.EnqueueOptions{}); err != nil {
		return fmt.Errorf("queueing the callback: %w", err)
	}
	h.app.notify()
	return nil
}

// callbackBody is what a callback with a body (method POST, PUT, ...)
// carries: never the secret, which is in the URL.
type callbackBody struct {
	ID             string `json:"id"`
	UpstreamStatus int    `json:"upstream_status"`
}

// resultOf is the result of a final outcome: the upstream's answer, or a
// JSON error (502, 504 on timeout) that names no address.
func (h *Handler) resultOf(ev *queue.Event, res forward.Result, n int) queue.Result {
	r := queue.Result{Hook: ev.Hook, EventID: ev.ID}
	answered := res.Status != 0
	switch {
	case res.TimedOut && !answered:
		r.Status, r.Error = http.StatusGatewayTimeout, attemptError(res)
	case !answered:
		r.Status, r.Error = http.StatusBadGateway, attemptError(res)
	case res.TooLarge:
		r.Status, r.Error = http.StatusBadGateway, "the upstream's answer is larger than max_size"
	default:
		r.Status, r.ContentType, r.Body = res.Status, res.Header.Get("Content-Type"), res.Body
		return r
	}
	public := "upstream did not answer"
	switch {
	case r.Status == http.StatusGatewayTimeout:
		public = "upstream timed out"
	case res.TooLarge:
		public = "upstream answer larger than max_size"
	}
	public += fmt.Sprintf(" after %d attempt", n)
	if n != 1 {
		public += "s"
	}
	r.ContentType = "application/json"
	r.Body, _ = json.Marshal(errorBody{Error: public, Status: r.Status})
	return r
}

// serveFetch answers GET <fetch>?id=<secret> with the stored result,
// authenticated with the hook's own auth over an empty body.
func (h *Handler) serveFetch(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		closeUnread(w, r)
		return h.reject(w, r, http.StatusMethodNotAllowed, reasonMethod, "method not allowed", nil)
	}
	_, err := h.authenticate(r, []byte{})
	switch {
	case errors.Is(err, verify.ErrBusy):
		w.Header().Set("Retry-After", "1")
		return h.reject(w, r, http.StatusTooManyRequests, reasonAuthBusy, "too many requests", err)
	case errors.Is(err, queue.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		return h.reject(w, r, http.StatusServiceUnavailable, reasonStore, "hook store unavailable", err)
	case err != nil:
		if h.hasBasic {
			w.Header().Set("WWW-Authenticate", `Basic realm="webhook_gateway"`)
		}
		return h.reject(w, r, http.StatusUnauthorized, reasonAuth, "unauthorized", err)
	}
	secret := r.URL.Query().Get("id")
	if secret == "" {
		return h.fail(w, r, http.StatusBadRequest, errors.New("fetch needs ?id=<the id of the callback>"))
	}
	res, err := h.reply.results.GetResult(r.Context(), secret)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return h.fail(w, r, http.StatusNotFound, errors.New("no result for this id: unknown or expired"))
	case err != nil:
		h.logger.Error("reading a result", zap.String("hook", h.name), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return h.fail(w, r, http.StatusServiceUnavailable, errors.New("result store unavailable, retry later"))
	}
	hdr := w.Header()
	ct := res.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	hdr.Set("Content-Type", ct)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set(HeaderUpstreamStatus, strconv.Itoa(res.Status))
	hdr.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Body)
	return nil
}

// purgeResults removes expired results, in the app's purge loop.
func (a *App) purgeResults(ctx context.Context) {
	rs, ok := a.store.(queue.Results)
	if !ok {
		return
	}
	n, err := rs.PurgeResults(ctx, a.now())
	switch {
	case err != nil && ctx.Err() == nil:
		a.logger.Warn("purging expired results", zap.Error(err))
	case n > 0:
		a.logger.Info("purged expired results", zap.Int("results", n))
	}
}

// parseReply reads `reply { ... }`.
func parseReply(d *caddyfile.Dispenser) (*ReplyConfig, error) {
	if d.NextArg() {
		return nil, d.Errf("reply takes a block, not %q", d.Val())
	}
	c := new(ReplyConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "allow" && opt != "tls_trusted_ca_certs" && seen[opt] {
			return nil, d.Errf("reply: option %s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "callback":
			err = oneArg(d, &c.Callback)
		case "allow":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("reply: allow needs at least one host pattern, IP or CIDR range")
			}
			if _, perr := reply.ParseAllow(args); perr != nil {
				return nil, d.Errf("reply: allow: %v", perr)
			}
			c.Allow = append(c.Allow, args...)
		case "method":
			err = oneArg(d, &c.Method)
			c.Method = strings.ToUpper(c.Method)
		case "fetch":
			err = oneArg(d, &c.Fetch)
		case "retain":
			err = durationArg(d, &c.Retain)
		case "tls_trusted_ca_certs":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("reply: tls_trusted_ca_certs needs at least one PEM file")
			}
			c.TLSTrustedCACerts = append(c.TLSTrustedCACerts, args...)
		case "sign":
			c.Sign, err = parseSign(d)
		default:
			return nil, d.Errf("reply: unrecognized option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}
