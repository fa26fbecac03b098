// Package caddymodule adapts the gateway's plain-Go packages (verify,
// reshape, forward) to Caddy: module registration, Caddyfile and JSON
// config, provisioning, the request pipeline, placeholders and metrics.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/queue"
	"github.com/caddy-webhooks/gateway/reshape"
	"github.com/caddy-webhooks/gateway/verify"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the inbound side.
const (
	defaultMaxSize  = 1 << 20
	defaultDeadline = 25 * time.Second
	// maxIDLength bounds an event id taken from a request header or id_from,
	// since it is echoed in outbound headers and responses.
	maxIDLength = 200
)

// Handler is the webhook_gateway HTTP handler. It authenticates the sender,
// enforces the method, size and JSON content type, optionally reshapes the
// payload, and either forwards it to upstream actions with retries or, with
// no forward, passes the verified body to the next handler (gate mode).
//
// Caddyfile syntax:
//
//	webhook_gateway [<matcher>] {
//		name <name>
//		methods <method...>
//		max_size <size>
//		content_type <media-type...>
//		form_payload
//		pass_credentials
//		auth basic <user> <password|hash>
//		auth api_key <key...> [{ header <name> | query <name> | bearer }]
//		auth hmac <secret...> {
//			header <name>
//			algorithm sha1|sha256|sha512
//			encoding hex|base64|base64url
//			prefix <text>
//			timestamp_header <name>
//			signed <template>
//			tolerance <duration>
//			reject_duplicate_keys
//		}
//		auth <preset> <secret...> [{ tolerance <duration>; reject_duplicate_keys }]
//		auth issued <issuer> <api token template> <token template>
//		id_from <placeholder>
//		reshape [keep] {
//			set <dest.path> <value> [required]
//			delete <path>
//		}
//		forward <url> {
//			name <name>
//			method <method>
//			header <name> <value>
//			timeout <duration>
//			retries <n>
//			backoff <base> <max>
//			retry_on <status|Nxx...>
//			sign standard|github <secret>
//			sign hmac <secret> { header <name>; algorithm ..; encoding ..; prefix .. }
//			tls_insecure_skip_verify
//			body reshaped|original
//		}
//		publish amqp://<user>:<pass>@<host>:<port>/<vhost> {
//			name <name>
//			exchange <template>
//			routing_key <template>
//			persistent on|off
//			timeout <duration>
//			retries <n>
//			backoff <base> <max>
//			body reshaped|original
//		}
//		publish nats://<host>:<port> {
//			name <name>
//			subject <template>
//			timeout <duration>
//			retries <n>
//			backoff <base> <max>
//			body reshaped|original
//		}
//		mode sync|async
//		deadline <duration>
//		reply { ... }   (see ReplyConfig)
//		log off|meta|full
//		log_body <size>
//		log_redact <header...>
//		log_max <n>
//	}
//
// Placeholders set for later handlers, logs and forward headers:
//
//	{http.webhook_gateway.id}              event id (id_from, the preset's delivery header, or a new UUIDv7)
//	{http.webhook_gateway.auth}            the auth method that passed (e.g. "github")
//	{http.webhook_gateway.received_at}     when the request arrived (RFC 3339)
//	{http.webhook_gateway.json.<path>}     a value of the received JSON (gjson path syntax)
//	{http.webhook_gateway.attempts}        attempts made by the forward (sync mode)
//	{http.webhook_gateway.upstream_status} last upstream status (sync mode)
//	{http.webhook_gateway.issued.tenant}     the tenant of the issued hook (auth issued)
//	{http.webhook_gateway.issued.datasource} its datasource
//	{http.webhook_gateway.issued.event}      its event
//	{http.webhook_gateway.issued.ts_field}   its tsField
//	{http.webhook_gateway.issued.ts}         the payload's value at tsField
type Handler struct {
	// Name keys this hook's metrics and logs. Default: derived from the
	// path matcher in the Caddyfile (e.g. "hooks/github"), else "default".
	Name string `json:"name,omitempty"`

	// Methods accepted. Others get 405 with an Allow header. Default: POST.
	Methods []string `json:"methods,omitempty"`

	// MaxSize is the largest body accepted, in bytes. A larger
	// Content-Length is refused before reading; a longer body is refused
	// while reading. Default: 1 MiB.
	MaxSize int64 `json:"max_size,omitempty"`

	// ContentTypes are the accepted media types; "type/*" and
	// "application/*+json" wildcards are allowed. Parameters are ignored but
	// a charset other than utf-8 is refused. Others get 415 with an
	// Accept-Post header. Default: application/json, application/*+json.
	ContentTypes []string `json:"content_types,omitempty"`

	// FormPayload also accepts application/x-www-form-urlencoded bodies that
	// carry the JSON document in a `payload` field (GitHub, Slack). The
	// signature is still checked over the raw form bytes. Default: off.
	FormPayload bool `json:"form_payload,omitempty"`

	// Auth lists the accepted ways to authenticate. A request passes if any
	// one of them passes. With none, every request passes authentication
	// (a warning is logged at provisioning).
	Auth []AuthConfig `json:"auth,omitempty"`

	// PassCredentials keeps the credential the sender authenticated with
	// (the api_key header or query parameter, the Authorization header of
	// basic and bearer, the header of presets that send their secret as
	// is) on the request once it is checked. By default it is removed, so
	// neither the next handler in gate mode nor a placeholder such as
	// {http.request.uri} in a forward action gets it.
	PassCredentials bool `json:"pass_credentials,omitempty"`

	// IDFrom is a placeholder template that yields the event id, e.g.
	// "{http.request.header.X-Request-Id}". Default: the delivery id
	// header of the auth preset that passed, else a new UUIDv7.
	IDFrom string `json:"id_from,omitempty"`

	// Reshape maps fields of the received JSON into a new document. The
	// reshaped body goes to the forward actions, or to the next handler in
	// gate mode.
	Reshape *ReshapeConfig `json:"reshape,omitempty"`

	// Forward lists the upstream actions the event is delivered to,
	// concurrently. With no forward and no publish, the handler is a
	// gate: the verified body goes to the next handler.
	Forward []ForwardConfig `json:"forward,omitempty"`

	// Publish lists the broker actions (RabbitMQ, NATS JetStream), which
	// run beside the forwards. Actions are numbered forwards first, then
	// publishes, in the order written; stored async events refer to their
	// action by that number.
	Publish []PublishConfig `json:"publish,omitempty"`

	// Mode is how forwarding answers the sender: "sync" (default), the
	// sender waits for the actions' outcome; "async", the event is stored
	// durably, the sender gets 202, and the webhook_gateway app delivers
	// it in the background with retries on a long schedule.
	Mode string `json:"mode,omitempty"`

	// Deduplicate is, in async mode, the window in which an event id seen
	// before is answered 200 {"status":"duplicate"} and not delivered
	// again. It holds across restarts (and instances sharing NATS).
	// Default: off; `deduplicate` alone in the Caddyfile means 24h.
	Deduplicate caddy.Duration `json:"deduplicate,omitempty"`

	// Deadline bounds, in sync mode, the total time of all attempts of all
	// actions, so the sender's own timeout is not hit. Default: 25s.
	Deadline caddy.Duration `json:"deadline,omitempty"`

	// Reply makes an async hook request-reply: a callback to the sender
	// when the forward's answer is ready, fetched by a secret id.
	Reply *ReplyConfig `json:"reply,omitempty"`
	// Log is what the run log keeps of this hook's requests, in every
	// mode: "full" (default) keeps each request's method and path (never
	// the query), sender address, auth method or rejection reason, the
	// status answered, each attempt, the received headers (credentials
	// redacted) and the body up to LogBody; "meta" keeps the same without
	// headers and bodies (async events still hold the body they deliver);
	// "off" records nothing but the async events delivery needs.
	Log string `json:"log,omitempty"`

	// LogBody bounds, in bytes, the received body kept in a record, and
	// the sent body of a sync record; a longer one is cut and the record
	// marked truncated (not replayable). Default: 64 KiB.
	LogBody int64 `json:"log_body,omitempty"`

	// LogRedact names more request headers whose values the run log
	// stores as "[redacted]". Always redacted: Authorization,
	// Proxy-Authorization, Cookie, and every header a configured auth
	// reads (the api_key header, signature, token and timestamp headers).
	LogRedact []string `json:"log_redact,omitempty"`

	// LogMax is how many records of this hook the store keeps; beyond it
	// the oldest finished ones are removed (queued events never are).
	// Default: 100000.
	LogMax int `json:"log_max,omitempty"`

	verifiers   []namedVerifier
	credHeaders []string // removed once checked, unless PassCredentials
	credQuery   []string
	hasBasic    bool
	accepted    []mediaRange
	acceptPost  string
	allow       string
	methods     map[string]struct{}
	program     *reshape.Program
	actions     []*action
	client      *forward.Client
	app         *App
	reply       *replier
	async       bool
	dedupWindow time.Duration
	metrics     *hookMetrics
	logger      *zap.Logger
	now         func() time.Time
	newID       func() string
	deadline    time.Duration
	maxSize     int64
	name        string
	// fingerprint is the handler's config as loaded: two handlers of one
	// config may share a name only if it is the same.
	fingerprint string
	runLog      runLogConfig
}

type namedVerifier struct {
	method string
	v      verify.Verifier
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_gateway",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves {env.*} placeholders and builds the verifiers, the
// reshape program and the forward actions.
func (h *Handler) Provision(ctx caddy.Context) (err error) {
	defer func() { err = h.hookError(err) }()
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now
	}
	if h.newID == nil {
		h.newID = newUUIDv7
	}
	repl := caddy.NewReplacer()
	cfg, err := json.Marshal(h)
	if err != nil {
		return err
	}
	h.fingerprint = string(cfg)

	h.name = h.Name
	if h.name == "" {
		h.name = "default"
	}
	h.maxSize = h.MaxSize
	if h.maxSize <= 0 {
		h.maxSize = defaultMaxSize
	}
	h.deadline = time.Duration(h.Deadline)
	if h.deadline <= 0 {
		h.deadline = defaultDeadline
	}

	methods := h.Methods
	if len(methods) == 0 {
		methods = []string{http.MethodPost}
	}
	h.methods = make(map[string]struct{}, len(methods))
	for _, m := range methods {
		h.methods[strings.ToUpper(m)] = struct{}{}
	}
	h.allow = strings.ToUpper(strings.Join(methods, ", "))

	types := h.ContentTypes
	if len(types) == 0 {
		types = []string{"application/json", "application/*+json"}
	}
	h.IDFrom = expandJSONShorthand(h.IDFrom)
	h.accepted, err = parseMediaRanges(types)
	if err != nil {
		return err
	}
	acceptPost := types
	if h.FormPayload {
		acceptPost = append(append([]string(nil), types...), formMediaType)
	}
	h.acceptPost = strings.Join(acceptPost, ", ")

	h.verifiers = h.verifiers[:0]
	for i, a := range h.Auth {
		a.Method = strings.ToLower(a.Method)
		if err := authEnvError(a, repl); err != nil {
			return fmt.Errorf("auth #%d (%s): %w", i+1, a.Method, err)
		}
		if a.Method == "issued" {
			v, err := newIssuedVerifier(ctx, a)
			if err != nil {
				return fmt.Errorf("auth #%d (issued): %w", i+1, err)
			}
			h.verifiers = append(h.verifiers, namedVerifier{method: a.Method, v: v})
			continue
		}
		spec := a.spec(repl)
		v, err := verify.New(spec)
		if err != nil {
			return fmt.Errorf("auth #%d (%s): %w", i+1, a.Method, err)
		}
		if a.Method == "basic" {
			h.hasBasic = true
		}
		h.verifiers = append(h.verifiers, namedVerifier{method: a.Method, v: v})
	}
	h.credHeaders, h.credQuery = credentialPlaces(h.Auth)
	h.provisionRunLog(repl)
	if len(h.verifiers) == 0 {
		h.logger.Warn("webhook_gateway has no auth: every request that is valid JSON passes", zap.String("hook", h.name))
	}

	if h.Reshape != nil {
		h.program, err = h.Reshape.compile()
		if err != nil {
			return fmt.Errorf("reshape: %w", err)
		}
	}

	h.client = forward.NewClient(forward.ClientOptions{MaxResponseBytes: h.resultBound()})
	h.actions = h.actions[:0]
	names := map[string]bool{}
	for i := range h.Forward {
		a, err := h.Forward[i].provision(repl, h.program != nil, i)
		if err != nil {
			return fmt.Errorf("forward #%d: %w", i+1, err)
		}
		if names[a.name] {
			return fmt.Errorf("forward #%d: two actions are named %q; names label metrics and stored events", i+1, a.name)
		}
		names[a.name] = true
		h.actions = append(h.actions, a)
	}
	// publishes after forwards: stored events keep their action's number
	for i := range h.Publish {
		a, err := h.Publish[i].provision(repl, h.program != nil, len(h.Forward)+i)
		if err != nil {
			return fmt.Errorf("publish #%d: %w", i+1, err)
		}
		h.actions = append(h.actions, a)
		if names[a.name] {
			return fmt.Errorf("publish #%d: two actions are named %q; names label metrics and stored events", i+1, a.name)
		}
		names[a.name] = true
	}
	if err := h.provisionReply(repl); err != nil {
		return err
	}

	h.metrics, err = registerMetrics(ctx.GetMetricsRegistry(), h.name)
	if err != nil {
		return err
	}

	// Every handler registers its name with the app, so two differently
	// configured handlers cannot share one; async handlers also get the
	// store and the workers that deliver their events.
	h.async = h.Mode == "async"
	h.dedupWindow = time.Duration(h.Deduplicate)
	appIface, err := ctx.App("webhook_gateway")
	if err != nil {
		return fmt.Errorf("webhook_gateway app: %w", err)
	}
	h.app = appIface.(*App)
	if err := h.app.register(h); err != nil {
		return err
	}
	return h.bindResults()
}

// Validate checks the configuration; it has no side effects.
func (h *Handler) Validate() (err error) {
	defer func() { err = h.hookError(err) }()
	switch h.Mode {
	case "", "sync":
	case "async":
		if len(h.Forward)+len(h.Publish) == 0 {
			return errors.New("mode async needs at least one forward or publish action")
		}
	default:
		return fmt.Errorf("unknown mode %q (want sync or async)", h.Mode)
	}
	if h.Deduplicate != 0 && h.Mode != "async" {
		return errors.New("deduplicate needs mode async, whose event store remembers ids")
	}
	if h.Deduplicate < 0 {
		return errors.New("deduplicate window must not be negative")
	}
	if h.MaxSize < 0 {
		return errors.New("max_size must not be negative")
	}
	for _, m := range h.Methods {
		if m == "" || strings.ContainsAny(m, " \t,") {
			return fmt.Errorf("invalid method %q", m)
		}
	}
	return h.validateRunLog()
}

// ServeHTTP runs the pipeline: method, content type, size, authentication,
// JSON, reshape, then forward or the next handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.reply != nil && r.URL.Path == h.reply.fetch {
		return h.serveFetch(w, r)
	}
	start := h.now()
	h.metrics.received.Inc()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	rec := h.beginRecord(r, repl, start)

	if _, ok := h.methods[r.Method]; !ok {
		w.Header().Set("Allow", h.allow)
		closeUnread(w, r)
		return h.reject(w, r, http.StatusMethodNotAllowed, reasonMethod, "method not allowed", nil)
	}
	form, ok := h.acceptContentType(r.Header.Get("Content-Type"))
	if !ok {
		w.Header().Set("Accept-Post", h.acceptPost)
		closeUnread(w, r)
		return h.reject(w, r, http.StatusUnsupportedMediaType, reasonContentType, "unsupported content type", nil)
	}
	body, err := readBody(w, r, h.maxSize)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return h.reject(w, r, http.StatusRequestEntityTooLarge, reasonSize, "body too large", err)
		}
		return h.reject(w, r, http.StatusBadRequest, reasonBody, "could not read body", err)
	}
	if rec != nil {
		rec.payload = body
	}

	method, err := h.authenticate(r, body)
	if errors.Is(err, verify.ErrBusy) {
		// too many password hashes in progress: no verdict, so not 401
		w.Header().Set("Retry-After", "1")
		return h.reject(w, r, http.StatusTooManyRequests, reasonAuthBusy, "too many requests", err)
	}
	if errors.Is(err, queue.ErrUnavailable) {
		// the store of issued hooks cannot say: no verdict, so not 401
		w.Header().Set("Retry-After", "5")
		return h.reject(w, r, http.StatusServiceUnavailable, reasonStore, "hook store unavailable", err)
	}
	if err != nil {
		if h.hasBasic {
			w.Header().Set("WWW-Authenticate", `Basic realm="webhook_gateway"`)
		}
		if rec != nil {
			rec.reason = authReason(err)
		}
		return h.reject(w, r, http.StatusUnauthorized, reasonAuth, "unauthorized", fmt.Errorf("%w; body %s", err, bodyHint(body)))
	}
	if rec != nil {
		rec.auth = method
	}
	if !h.PassCredentials {
		// checked: no later handler, placeholder or forward action gets it
		stripCredentials(r, h.credHeaders, h.credQuery)
	}

	doc := body
	if form {
		doc, err = formPayload(body)
		if err != nil {
			return h.reject(w, r, http.StatusBadRequest, reasonJSON, err.Error(), nil)
		}
	}
	if err := checkJSON(doc); err != nil {
		return h.reject(w, r, http.StatusBadRequest, reasonJSON, err.Error(), nil)
	}

	repl.Map(jsonPlaceholders(doc)) // before the id: id_from may read the body
	id := h.eventID(r, repl, method)
	if rec != nil {
		rec.id = id
	}
	repl.Set(phID, id)
	repl.Set(phAuth, method)
	repl.Set(phReceivedAt, start.UTC().Format(time.RFC3339Nano))

	out := doc
	if h.program != nil {
		out, err = h.program.Apply(doc, repl.Get)
		if err != nil {
			var missing *reshape.MissingError
			if errors.As(err, &missing) {
				return h.reject(w, r, http.StatusUnprocessableEntity, reasonMapping, missing.Error(), nil)
			}
			return h.reject(w, r, http.StatusUnprocessableEntity, reasonMapping, "payload could not be reshaped", err)
		}
	}

	if len(h.actions) == 0 {
		// Gate mode: the next handler gets the bytes that were verified,
		// or the reshaped JSON.
		h.metrics.passed.Inc()
		passed := withBody(r, body, false)
		if h.program != nil {
			passed = withBody(r, out, true)
		}
		if rec == nil {
			return next.ServeHTTP(w, passed)
		}
		sw := rec.statusWriter(w) // a gate's record has no room: its own writer
		err := next.ServeHTTP(sw, passed)
		h.recordPassed(rec, answered(sw.status, err), out)
		return err
	}
	if h.async {
		return h.enqueue(w, r, repl, id, start, doc, out)
	}
	return h.forwardSync(w, r, repl, id, doc, out)
}

// Cleanup stops delivering this hook's events, closes the idle
// connections of the forward client and what each action holds open.
func (h *Handler) Cleanup() error {
	if h.app != nil {
		h.app.unregister(h)
	}
	if h.client != nil {
		h.client.Close()
	}
	for _, a := range h.actions {
		a.sender.close()
	}
	if h.reply != nil {
		h.reply.action.sender.close()
	}
	return nil
}

// authenticate returns the method that passed.
func (h *Handler) authenticate(r *http.Request, body []byte) (string, error) {
	if len(h.verifiers) == 0 {
		return "none", nil
	}
	var errs []error
	for _, nv := range h.verifiers {
		err := nv.v.Verify(r, body)
		if err == nil {
			return nv.method, nil
		}
		errs = append(errs, err) // verify errors start with the method name
	}
	return "", errors.Join(errs...)
}

// eventID picks the event id: id_from, the delivery id header of the
// preset that passed (or its alias, as the verifier reads it: svix-id for
// webhook-id), or a new UUIDv7. An id that is empty, too long or not
// printable ASCII is replaced by a UUIDv7, because it is echoed in
// outbound headers.
func (h *Handler) eventID(r *http.Request, repl *caddy.Replacer, method string) string {
	var id string
	if h.IDFrom != "" {
		id = repl.ReplaceAll(h.IDFrom, "")
	} else {
		id = verify.EventID(method, r.Header)
	}
	if !usableID(id) {
		return h.newID()
	}
	return id
}

func usableID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func newUUIDv7() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// closeUnread asks for the connection to be closed when a request is
// refused before its body is read, so the answer goes out at once instead
// of after the server has tried to drain the body (or never, to a sender
// waiting on Expect: 100-continue).
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// reject answers a refused request. When the server has handle_errors
// routes the error goes to them (caddyhttp.Error); otherwise the handler
// writes the JSON error body itself. public is what the sender may see;
// the log line at INFO also has the cause, which never holds a secret,
// a credential or body bytes (verify's errors do not).
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, status int, reason, public string, cause error) error {
	h.metrics.rejected.WithLabelValues(h.name, reason).Inc()
	h.recordRejected(r, status, public)
	if ce := h.logger.Check(zapcore.InfoLevel, "webhook rejected"); ce != nil {
		fields := []zap.Field{
			zap.String("hook", h.name), zap.String("reason", reason), zap.Int("status", status),
			zap.String("remote_ip", senderAddr(r)), zap.String("error", public),
		}
		if cause != nil {
			fields = append(fields, zap.String("cause", cause.Error()))
		}
		ce.Write(fields...)
	}
	return h.fail(w, r, status, errors.New(public))
}

// fail sends err with status to handle_errors if configured, else writes
// {"error": ..., "status": ...}.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) error {
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		return caddyhttp.Error(status, err)
	}
	writeJSON(w, status, errorBody{Error: err.Error(), Status: status})
	return nil
}

// deadlineContext bounds a sync delivery by the deadline and the sender's
// own connection.
func (h *Handler) deadlineContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.deadline)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
