package caddymodule

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/queue"
	"github.com/caddy-webhooks/gateway/verify"
)

// Run log levels (the `log` option).
const (
	logFull = "full"
	logMeta = "meta"
	logOff  = "off"
)

// Defaults of the run log.
const (
	defaultLogBody = 64 << 10
	defaultLogMax  = 100000
	// minScanned is the shortest presented credential searched for in
	// the path, headers and bodies of a record: issued tokens are 36 and
	// 40 characters, and a shorter value cannot be told from text.
	minScanned = 8
	redacted   = "[redacted]"
	// maxRequestText bounds the recorded method and path.
	maxRequestText = 2048
)

// runLogConfig is the provisioned run log settings of a handler.
type runLogConfig struct {
	level   string   // logFull, logMeta or logOff
	body    int      // bound of a kept body
	max     int      // records kept per hook
	redact  []string // canonical names of the headers redacted, each once
	tokens  []string // templates of `auth issued` tokens, resolved per request
	queried []string // api_key query parameters
}

// parseRunLog reads the log, log_body, log_redact and log_max options.
func (h *Handler) parseRunLog(d *caddyfile.Dispenser, opt string) error {
	switch opt {
	case "log":
		if err := oneArg(d, &h.Log); err != nil {
			return err
		}
		switch h.Log {
		case logOff, logMeta, logFull:
		default:
			return d.Errf("log must be off, meta or full, not %q", h.Log)
		}
	case "log_body":
		return sizeArg(d, 1<<30, "from 1 byte to 1GiB", &h.LogBody)
	case "log_redact":
		h.LogRedact = d.RemainingArgs()
		if len(h.LogRedact) == 0 {
			return d.Errf("log_redact needs at least one header name")
		}
	case "log_max":
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return d.Errf("log_max: want a whole number above 0, not %q", s)
		}
		h.LogMax = n
	}
	return nil
}

// validateRunLog checks the run log options.
func (h *Handler) validateRunLog() error {
	switch h.Log {
	case "", logOff, logMeta, logFull:
	default:
		return fmt.Errorf("unknown log level %q (want off, meta or full)", h.Log)
	}
	if h.LogBody < 0 || h.LogBody > 1<<30 {
		return fmt.Errorf("log_body %d out of range (from 0, the default, to 1GiB)", h.LogBody)
	}
	if h.LogMax < 0 {
		return errors.New("log_max must not be negative")
	}
	for _, name := range h.LogRedact {
		if err := forward.CheckHeaderName(name); err != nil {
			return fmt.Errorf("log_redact: %w", err)
		}
	}
	return nil
}

// provisionRunLog sets the run log settings: the level, the bounds, and
// the headers redacted, which are those named by log_redact, the ones
// that carry credentials everywhere, and every header a configured auth
// reads.
func (h *Handler) provisionRunLog(repl *caddy.Replacer) {
	c := runLogConfig{level: h.Log, body: int(h.LogBody), max: h.LogMax}
	switch c.level {
	case logOff, logMeta:
	default:
		c.level = logFull
	}
	if c.body <= 0 {
		c.body = defaultLogBody
	}
	if c.max <= 0 {
		c.max = defaultLogMax
	}
	redact := func(name string) {
		if name = http.CanonicalHeaderKey(name); !slices.Contains(c.redact, name) {
			c.redact = append(c.redact, name)
		}
	}
	for _, name := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		redact(name)
	}
	for _, name := range h.LogRedact {
		redact(name)
	}
	for _, name := range h.credHeaders {
		redact(name)
	}
	for _, a := range h.Auth {
		method := strings.ToLower(a.Method)
		if method != "issued" {
			for _, name := range verify.Headers(a.spec(repl)) {
				redact(name)
			}
			continue
		}
		// the tokens of an issued hook are in its path, or wherever its
		// templates read them
		for _, tmpl := range []string{a.APIToken, a.Token} {
			c.tokens = append(c.tokens, tmpl)
			for _, key := range placeholderKeys(tmpl, nil) {
				for _, prefix := range []string{"http.request.header.", "header."} {
					if name, ok := strings.CutPrefix(key, prefix); ok {
						redact(name)
					}
				}
			}
		}
	}
	c.queried = h.credQuery
	h.runLog = c
}

// logs reports whether the hook writes run log records beyond the async
// events delivery needs.
func (h *Handler) logs() bool { return h.runLog.level != logOff }

// runRecord is what the run log learns of one request as the pipeline
// goes: it becomes the record(s) written once the request is answered.
type runRecord struct {
	start    time.Time
	request  string
	remoteIP string
	headers  []byte   // encoded, see queue.Event.HeaderBlock
	secrets  []string // presented credentials that may be echoed elsewhere
	id       string
	auth     string
	reason   string    // the verifiers' errors, when auth failed
	payload  []byte    // the received body, once read
	room     *syncRoom // in a sync hook: allocated with the record
}

// syncRoom is what a request of a sync hook records, allocated with its
// run record (see syncRecord): its first event, the trace of its first
// action's attempts (with room for two), and the writer that notes the
// status it answered. The event refers to the trace's attempts, and the
// recorder hands it to the store: they all live as long as the record.
type syncRoom struct {
	first     queue.Event
	firstUsed bool
	trace     attemptTrace
	tries     [2]queue.Attempt
	traceOne  [1]*attemptTrace
	status    statusRecorder
	wrapper   caddyhttp.ResponseWriterWrapper
}

// syncRecord is a run record with its room, in one allocation.
type syncRecord struct {
	rec  runRecord
	room syncRoom
}

// newRunRecord is a run record, with room for what a request of a sync
// hook records when the hook is one.
func (h *Handler) newRunRecord() *runRecord {
	if len(h.actions) == 0 || h.async {
		return new(runRecord)
	}
	s := new(syncRecord)
	s.rec.room = &s.room
	return &s.rec
}

// String keeps the record out of {http.vars.*} placeholders.
func (*runRecord) String() string { return "webhook_gateway run record" }

// runRecordVar is the request variable holding the request's runRecord,
// so that every refusal path finds it.
const runRecordVar = "webhook_gateway.run_record"

// beginRecord starts the run record of a request, nil when the hook does
// not log. It is taken before anything may change the request (credential
// stripping, the next handler).
func (h *Handler) beginRecord(r *http.Request, repl *caddy.Replacer, start time.Time) *runRecord {
	if !h.logs() {
		return nil
	}
	rec := h.newRunRecord()
	rec.start, rec.remoteIP = start, remoteIP(r)
	rec.secrets = h.presentedSecrets(r, repl)
	path := r.URL.EscapedPath()
	for _, s := range rec.secrets {
		path = strings.ReplaceAll(path, s, redacted)
	}
	rec.request = r.Method + " " + path
	if len(rec.request) > maxRequestText {
		rec.request = rec.request[:maxRequestText] + "..."
	}
	if h.runLog.level == logFull {
		rec.headers = h.redactHeaders(r.Header, rec.secrets)
	}
	caddyhttp.SetVar(r.Context(), runRecordVar, rec)
	return rec
}

// recordOf is the run record beginRecord stored on the request, or nil.
func recordOf(r *http.Request) *runRecord {
	rec, _ := caddyhttp.GetVar(r.Context(), runRecordVar).(*runRecord)
	return rec
}

// presentedSecrets lists the credentials this request presents that a
// header, the path or a body might repeat: the tokens of `auth issued`
// (in the path), and api_key values sent in the query (which proxies copy
// into headers such as X-Original-URI). Longest first, so a value that
// contains another is replaced whole.
func (h *Handler) presentedSecrets(r *http.Request, repl *caddy.Replacer) []string {
	if len(h.runLog.tokens) == 0 && (len(h.runLog.queried) == 0 || r.URL.RawQuery == "") {
		return nil
	}
	var out []string
	for _, tmpl := range h.runLog.tokens {
		if v := repl.ReplaceAll(tmpl, ""); len(v) >= minScanned {
			out = append(out, v)
		}
	}
	if len(h.runLog.queried) > 0 && r.URL.RawQuery != "" {
		q := r.URL.Query()
		for _, name := range h.runLog.queried {
			for _, v := range q[name] {
				if len(v) >= minScanned {
					out = append(out, v, url.QueryEscape(v), url.PathEscape(v))
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// redactHeaders encodes the request headers for the record (see
// queue.Event.HeaderBlock), with the value of every credential header,
// and of any header repeating a presented credential, replaced by
// "[redacted]". Their size is bounded by log_body too: beyond it, the
// headers that come last by name are left out.
func (h *Handler) redactHeaders(hdr http.Header, secrets []string) []byte {
	// the bound counts names and values; the room made is what they can
	// take encoded (lengths, and a value masked into a longer one)
	size, room := 0, 0
	for name, vals := range hdr {
		room += len(name) + 2*binary.MaxVarintLen16
		for _, v := range vals {
			size += len(name) + len(v)
			room += max(len(v), len(redacted)) + binary.MaxVarintLen16
		}
	}
	if size <= h.runLog.body {
		// all of them, in one pass
		b := make([]byte, 0, room)
		for name, vals := range hdr {
			b = h.appendHeader(b, name, vals, secrets)
		}
		return b
	}
	// which ones are kept does not depend on map order
	var b []byte
	size = 0
	for _, name := range slices.Sorted(maps.Keys(hdr)) {
		vals := hdr[name]
		for _, v := range vals {
			size += len(name) + len(v)
		}
		if size > h.runLog.body {
			break
		}
		b = h.appendHeader(b, name, vals, secrets)
	}
	return b
}

// appendHeader encodes one header of a record, redacted when it must be.
func (h *Handler) appendHeader(b []byte, name string, vals, secrets []string) []byte {
	if h.redacts(name, vals, secrets) {
		vals = masked(len(vals))
	}
	return queue.AppendHeader(b, name, vals)
}

// redacts reports whether the header name with vals is recorded as
// "[redacted]": a credential header, or one repeating a presented
// credential.
func (h *Handler) redacts(name string, vals, secrets []string) bool {
	return h.runLog.redacted(name) || containsAny(vals, secrets)
}

// redacted reports whether the header name is one the hook redacts. The
// names are compared without case: a name matches every spelling of it
// that canonicalizes to it (and a few more, never fewer); the lengths
// first, since most names differ in length from the few redacted.
func (c *runLogConfig) redacted(name string) bool {
	for _, n := range c.redact {
		if len(n) == len(name) && strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// oneMasked is the values of a redacted header with one value: read
// only, shared by every call of masked.
var oneMasked = []string{redacted}

// masked is n values of "[redacted]", for encoding (never kept or
// changed: the one-value case is shared).
func masked(n int) []string {
	if n == 1 {
		return oneMasked[:1:1]
	}
	out := make([]string, n)
	for i := range out {
		out[i] = redacted
	}
	return out
}

func containsAny(vals, secrets []string) bool {
	for _, v := range vals {
		for _, s := range secrets {
			if strings.Contains(v, s) {
				return true
			}
		}
	}
	return false
}

// event is a finished record of this request with the fields every record
// has.
func (h *Handler) event(rec *runRecord, status queue.Status, inbound int) *queue.Event {
	id := rec.id
	if id == "" {
		id = h.newID()
	}
	var ev *queue.Event
	if room := rec.room; room != nil && !room.firstUsed {
		ev, room.firstUsed = &room.first, true
	} else {
		ev = new(queue.Event)
	}
	*ev = queue.Event{
		ID:          id,
		Hook:        h.name,
		Action:      -1,
		ReceivedAt:  rec.start,
		UpdatedAt:   h.now(),
		Status:      status,
		Mode:        h.modeName(),
		Auth:        rec.auth,
		Inbound:     inbound,
		Request:     rec.request,
		RemoteIP:    rec.remoteIP,
		HeaderBlock: rec.headers,
	}
	return ev
}

// keepPayload sets the record's Payload to the received body, cut at
// log_body, unless the hook logs meta only or the body is what the record
// sends anyway.
func (h *Handler) keepPayload(ev *queue.Event, rec *runRecord, sent []byte) {
	if h.runLog.level != logFull || len(rec.payload) == 0 || bytes.Equal(rec.payload, sent) {
		return
	}
	var cut bool
	ev.Payload, cut = h.bounded(rec.payload, rec.secrets)
	ev.Truncated = ev.Truncated || cut
}

// keepBody sets the record's Body to what was sent (full level only), cut
// at log_body; a record without its whole body is marked truncated, so
// it is never replayed with a part of it. A meta record has no Body, which
// makes it not replayable either.
func (h *Handler) keepBody(ev *queue.Event, rec *runRecord, sent []byte) {
	if h.runLog.level != logFull {
		return
	}
	var cut bool
	ev.Body, cut = h.bounded(sent, rec.secrets)
	ev.Truncated = ev.Truncated || cut
}

// bounded is b cut at log_body with any presented credential replaced,
// and whether it was changed.
func (h *Handler) bounded(b []byte, secrets []string) ([]byte, bool) {
	changed := false
	if len(b) > h.runLog.body {
		b, changed = b[:h.runLog.body], true
	}
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			b, changed = bytes.ReplaceAll(b, []byte(s), []byte(redacted)), true
		}
	}
	if !changed {
		return b, false
	}
	return slices.Clip(b), true
}

// modeName is the hook's mode as records name it.
func (h *Handler) modeName() string {
	switch {
	case len(h.actions) == 0:
		return "gate"
	case h.async:
		return "async"
	default:
		return "sync"
	}
}

// recordRejected records a refused request: the reason is what the
// verifier said or what the sender was told, never a secret or body
// bytes.
func (h *Handler) recordRejected(r *http.Request, status int, reason string) {
	rec := recordOf(r)
	if rec == nil {
		return
	}
	if rec.id == "" {
		rec.id = h.provisionalID(r)
	}
	ev := h.event(rec, queue.StatusRejected, status)
	ev.Reason = reason
	if rec.reason != "" {
		ev.Reason = rec.reason
	}
	h.keepPayload(ev, rec, nil)
	h.app.record(ev)
}

// provisionalID is the id of a request refused before its id was
// decided: the delivery id header of a configured preset, when present
// and usable, else a new one.
func (h *Handler) provisionalID(r *http.Request) string {
	for _, nv := range h.verifiers {
		if id := verify.EventID(nv.method, r.Header); usableID(id) {
			return id
		}
	}
	return h.newID()
}

// authReason is the verifiers' errors as one line: which method said
// what ("github: credential does not match; api_key: key credential
// missing"). Verify errors never hold a secret or body bytes.
func authReason(err error) string {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		parts := make([]string, 0, len(joined.Unwrap()))
		for _, e := range joined.Unwrap() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// recordPassed records a request of a gate hook that the next handler
// answered with status.
func (h *Handler) recordPassed(rec *runRecord, status int, reshaped []byte) {
	ev := h.event(rec, queue.StatusPassed, status)
	var sent []byte
	if h.program != nil && h.runLog.level == logFull {
		sent = reshaped
		ev.Body, ev.Truncated = h.bounded(reshaped, rec.secrets)
	}
	h.keepPayload(ev, rec, sent)
	h.app.record(ev)
}

// recordDuplicate records a repeated id answered 200 and not forwarded.
func (h *Handler) recordDuplicate(rec *runRecord) {
	if rec == nil {
		return
	}
	ev := h.event(rec, queue.StatusDuplicate, http.StatusOK)
	h.keepPayload(ev, rec, nil)
	h.app.record(ev)
}

// recordSync records one finished record per action of a sync request:
// what was sent, each attempt, delivered or dead, and the status the
// sender got. They replay like async events unless truncated.
func (h *Handler) recordSync(rec *runRecord, repl *caddy.Replacer, inbound int, doc, reshaped []byte, results []forward.Result, traces []*attemptTrace) {
	for i, a := range h.actions {
		ev := h.event(rec, queue.StatusDead, inbound)
		if results[i].OK() {
			ev.Status = queue.StatusDelivered
		}
		ev.Action = i
		ev.Values = a.values(repl)
		for k, v := range ev.Values {
			// a URL or header built from a token (an issued hook's
			// {path.2}): the record keeps no token, and so cannot be
			// replayed
			if containsAny([]string{v}, rec.secrets) {
				ev.Values[k], ev.Truncated = redacted, true
			}
		}
		ev.Attempts = traces[i].attempts
		sent := a.body(doc, reshaped)
		h.keepBody(ev, rec, sent)
		h.keepPayload(ev, rec, sent)
		h.app.record(ev)
	}
}

// logAsync sets the run log fields on the events of an async request
// before they are stored: they are its record. Their Body is what
// delivery sends and stays whole; the received payload, when it differs,
// is kept only if it fits in log_body, since a truncated event could not
// be replayed.
func (h *Handler) logAsync(evs []*queue.Event, rec *runRecord, method string) {
	for _, ev := range evs {
		ev.Mode = "async"
		ev.Auth = method
		ev.Inbound = http.StatusAccepted
		if rec == nil {
			continue
		}
		ev.Request = rec.request
		ev.RemoteIP = rec.remoteIP
		ev.HeaderBlock = rec.headers
		if h.runLog.level == logFull && len(rec.payload) <= h.runLog.body && !bytes.Equal(rec.payload, ev.Body) {
			ev.Payload, _ = h.bounded(rec.payload, rec.secrets)
			if len(ev.Payload) > h.runLog.body {
				ev.Payload = nil // a credential was masked into a longer text
			}
		}
	}
}

// attemptTrace collects the attempts of one action of a sync request.
type attemptTrace struct {
	now      func() time.Time
	sender   sender // describes an attempt's error
	attempts []queue.Attempt
}

// noTraces is the traces of a request not recorded: read only.
var noTraces [8]*attemptTrace

// traces are the attempt traces of a sync request's actions (none when
// rec is nil): the one of a hook with one action is in the record's room.
func (rec *runRecord) traces(actions []*action, now func() time.Time) []*attemptTrace {
	switch {
	case rec == nil && len(actions) <= len(noTraces):
		return noTraces[:len(actions):len(actions)]
	case rec == nil:
		return make([]*attemptTrace, len(actions))
	case len(actions) == 1 && rec.room != nil:
		room := rec.room
		room.trace = attemptTrace{now: now, sender: actions[0].sender, attempts: room.tries[:0]}
		room.traceOne[0] = &room.trace
		return room.traceOne[:]
	}
	out := make([]*attemptTrace, len(actions))
	for i, a := range actions {
		out[i] = &attemptTrace{now: now, sender: a.sender}
	}
	return out
}

// statusWriter is w wrapped to note the status answered, in the record's
// room when it has one, which keeps it: forget drops its reference to w.
func (rec *runRecord) statusWriter(w http.ResponseWriter) *statusRecorder {
	room := rec.room
	if room == nil {
		return &statusRecorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	}
	room.wrapper = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	room.status = statusRecorder{ResponseWriterWrapper: &room.wrapper}
	return &room.status
}

// forget drops the room's reference to the response writer, once the
// request was answered, so that the record, kept until it is stored,
// does not keep the response alive.
func (rec *runRecord) forget() {
	if rec.room != nil {
		rec.room.wrapper.ResponseWriter = nil
	}
}

func (t *attemptTrace) add(at forward.Attempt) {
	if t == nil {
		return
	}
	a := queue.Attempt{At: t.now().Add(-at.Duration), Status: at.Status, Latency: at.Duration}
	switch {
	case at.Err != nil:
		a.Error = t.sender.describe(at.Err)
	case at.Status < 200 || at.Status >= 300:
		a.Error = "upstream answered " + strconv.Itoa(at.Status)
	}
	t.attempts = append(t.attempts, a)
}

// statusRecorder notes the status the next handler of a gate answers.
type statusRecorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriterWrapper.Write(b)
}

// answered is the status a handler gave: what it wrote, else the status
// of the error it returned for handle_errors, else 200.
func answered(written int, err error) int {
	if written != 0 {
		return written
	}
	if err != nil {
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			return he.StatusCode
		}
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// remoteIP is the sender's address without its port: Caddy's client IP
// as it is, else the connection's remote address without its port.
func remoteIP(r *http.Request) string {
	if ip, ok := clientIP(r); ok {
		return ip
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
