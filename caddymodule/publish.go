package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-webhooks/gateway/forward"
	"github.com/caddy-webhooks/gateway/publish"
)

// PublishConfig is an action that publishes the event to a message
// broker: a RabbitMQ exchange (amqp://, amqps://) or a NATS JetStream
// subject (nats://, tls://). An attempt succeeds only when the broker
// confirms the message: a RabbitMQ publisher confirm of a routed message
// (the mandatory flag makes an unroutable one a failure), a JetStream
// acknowledgement. The message id (AMQP message-id, NATS Nats-Msg-Id) is
// the event id; the Webhook-Hook and Webhook-Attempt headers carry the
// hook and the attempt number. A confirmed publish counts as status 202
// in metrics, fan-out summaries and stored attempts.
//
// Actions are numbered forwards first, then publishes, each in the order
// written; stored async events refer to their action by that number.
type PublishConfig struct {
	// Name labels the action in metrics, logs, fan-out answers and the
	// admin API; the URL is never shown. Default: the action's position.
	Name string `json:"name,omitempty"`

	// URL of the broker: amqp://user:pass@host:5672/vhost or
	// nats://host:4222. {env.*} is resolved at provisioning; other
	// placeholders are not allowed. Credentials in it are never logged
	// or shown in errors. The first attempt connects, so a broker that is
	// down at start is not a config error.
	URL string `json:"url"`

	// Exchange (RabbitMQ) to publish to; a template like routing_key.
	// Default: "" (the default exchange, which routes by queue name).
	Exchange string `json:"exchange,omitempty"`

	// RoutingKey (RabbitMQ, required): a template with placeholders,
	// {json.<path>} included, resolved per request (and stored with an
	// async event, like a forward URL's values), e.g.
	// "event.{http.webhook_gateway.issued.tenant}.{json.repository.name}".
	RoutingKey string `json:"routing_key,omitempty"`

	// Persistent (RabbitMQ) sets delivery mode 2, so a durable queue keeps
	// the message across a broker restart. Default: true.
	Persistent *bool `json:"persistent,omitempty"`

	// Subject (NATS, required): a template like routing_key. A stream
	// must take the subject, else the publish fails.
	Subject string `json:"subject,omitempty"`

	// Timeout of one attempt: connecting, publishing and the confirm.
	// Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Retries after the first attempt; every failed publish is retried.
	// Default: 3 (async mode: the long default schedule unless retries or
	// backoff are set).
	Retries *int `json:"retries,omitempty"`

	// BackoffBase and BackoffMax as for forward. Defaults: 500ms, 30s.
	BackoffBase caddy.Duration `json:"backoff_base,omitempty"`
	BackoffMax  caddy.Duration `json:"backoff_max,omitempty"`

	// Body is "reshaped" (default when reshape is configured) or
	// "original".
	Body string `json:"body,omitempty"`
}

// brokerTarget is the sender of a publish action.
type brokerTarget struct {
	publisher publish.Publisher
	kind      string // "amqp" or "nats"
	exchange  string // templates, {env.*} resolved
	key       string // routing key or subject
}

// maxRouteLength is AMQP's short-string bound, which exchange names and
// routing keys are; NATS subjects are held to it too.
const maxRouteLength = 255

// routeError is an exchange, routing key or subject that a request's
// values cannot make. It names the field, never the value.
type routeError struct {
	field  string
	reason string
}

func (e *routeError) Error() string { return e.field + " could not be built: " + e.reason }

func (p *PublishConfig) provision(repl *caddy.Replacer, reshaped bool, index int) (*action, error) {
	if p.URL == "" {
		return nil, errors.New("url is required")
	}
	// every {env.*} of the URL, since a part left empty (a password)
	// would only show as a refused connection
	for _, m := range envPlaceholder.FindAllString(p.URL, -1) {
		if err := emptyEnv("url: part", m, repl); err != nil {
			return nil, err
		}
	}
	rawURL := repl.ReplaceKnown(p.URL, "")
	if strings.Contains(rawURL, "{") {
		return nil, errors.New("url: only {env.*} placeholders are allowed in a broker URL")
	}
	t := &brokerTarget{kind: publish.Kind(rawURL)}
	switch t.kind {
	case "amqp":
		if p.RoutingKey == "" {
			return nil, errors.New("publish amqp needs a routing_key")
		}
		if p.Subject != "" {
			return nil, errors.New("subject is for NATS; RabbitMQ takes exchange and routing_key")
		}
		t.exchange, t.key = p.Exchange, p.RoutingKey
	case "nats":
		if p.Subject == "" {
			return nil, errors.New("publish nats needs a subject")
		}
		if p.Exchange != "" || p.RoutingKey != "" || p.Persistent != nil {
			return nil, errors.New("exchange, routing_key and persistent are for RabbitMQ; NATS takes subject")
		}
		t.key = p.Subject
	default:
		return nil, fmt.Errorf("url %s: the scheme must be amqp, amqps, nats or tls", publish.Redact(rawURL))
	}
	// {env.*} now; the rest per request
	t.exchange = repl.ReplaceKnown(expandJSONShorthand(t.exchange), "")
	t.key = repl.ReplaceKnown(expandJSONShorthand(t.key), "")

	a := &action{name: p.Name, sender: t, timeout: time.Duration(p.Timeout)}
	if a.name == "" {
		a.name = strconv.Itoa(index)
	}
	if a.timeout <= 0 {
		a.timeout = defaultTimeout
	}
	a.keys = placeholderKeys(t.exchange, placeholderKeys(t.key, nil))
	if err := a.delivery(p.Body, reshaped, p.Retries, p.BackoffBase, p.BackoffMax); err != nil {
		return nil, err
	}

	var err error
	t.publisher, err = publish.New(rawURL, publish.Options{Transient: p.Persistent != nil && !*p.Persistent})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// route resolves the action's exchange and routing key (or subject) for
// one request.
func (t *brokerTarget) route(repl *caddy.Replacer) (exchange, key string, err error) {
	exchange = repl.ReplaceKnown(t.exchange, "")
	key = repl.ReplaceKnown(t.key, "")
	if t.kind == "nats" {
		return "", key, checkSubject(key)
	}
	if err := checkRoute("exchange", exchange); err != nil {
		return "", "", err
	}
	if key == "" {
		return "", "", &routeError{"routing key", "it is empty"}
	}
	return exchange, key, checkRoute("routing key", key)
}

func checkRoute(field, s string) error {
	switch {
	case len(s) > maxRouteLength:
		return &routeError{field, "it is longer than 255 bytes"}
	case strings.ContainsFunc(s, isControl):
		return &routeError{field, "a value holds a control character"}
	}
	return nil
}

// checkSubject refuses what JetStream cannot take as a publish subject:
// whitespace, an empty token, a wildcard token.
func checkSubject(s string) error {
	if err := checkRoute("subject", s); err != nil {
		return err
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return &routeError{"subject", "a value holds whitespace"}
	}
	for tok := range strings.SplitSeq(s, ".") {
		switch tok {
		case "":
			return &routeError{"subject", "it has an empty token (a value is empty or starts or ends with a dot)"}
		case "*", ">":
			return &routeError{"subject", "a value is a wildcard"}
		}
	}
	return nil
}

func (t *brokerTarget) verb() string { return "publish" }

func (t *brokerTarget) check(repl *caddy.Replacer) error {
	_, _, err := t.route(repl)
	return err
}

// send makes the attempts of a publish under policy. Every failed attempt
// is retryable.
func (t *brokerTarget) send(ctx context.Context, h *Handler, a *action, o outbound, policy forward.Policy, first int) forward.Result {
	start := h.now()
	exchange, key, err := t.route(o.repl)
	if err != nil {
		return forward.Result{Err: err}
	}
	var res forward.Result
	for try := 0; ; try++ {
		n := first + try
		actx, cancel := context.WithTimeout(ctx, a.timeout)
		began := h.now()
		err := t.publisher.Publish(actx, publish.Message{
			ID: o.id, Exchange: exchange, Key: key, Body: o.body, Hook: h.name, Attempt: n,
		})
		timedOut := err != nil && errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		res = forward.Result{Attempts: try + 1, Err: err, TimedOut: timedOut}
		if err == nil {
			res.Status = http.StatusAccepted
		}
		at := forward.Attempt{N: n, Status: res.Status, Err: err, Duration: h.now().Sub(began)}
		retry := err != nil && try < policy.Retries && ctx.Err() == nil
		if retry {
			at.Delay = policy.Delay(try+1, 0)
		}
		h.observeAttempt(a, o, at)
		if !retry || sleepCtx(ctx, at.Delay) != nil {
			break
		}
	}
	if !res.OK() && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		res.TimedOut = true
	}
	res.Duration = h.now().Sub(start)
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// publishFailure says, for answers and summaries, why a publish failed,
// without the broker's address or credentials.
func publishFailure(res forward.Result) string {
	var re *routeError
	switch {
	case res.TimedOut:
		return "timed out"
	case errors.As(res.Err, &re):
		return re.Error()
	case errors.Is(res.Err, publish.ErrUnroutable):
		return "unroutable"
	case errors.Is(res.Err, publish.ErrNotConfirmed):
		return "not confirmed"
	default:
		return "broker unreachable or refused the publish"
	}
}

func (t *brokerTarget) failure(res forward.Result) string {
	if res.OK() {
		return ""
	}
	return publishFailure(res)
}

func (t *brokerTarget) describe(err error) string {
	return publishFailure(forward.Result{Err: err})
}

// answer answers a sync request whose one action is a publish: 202 once
// confirmed, 504 when time ran out, else 502.
func (t *brokerTarget) answer(h *Handler, w http.ResponseWriter, r *http.Request, id string, res forward.Result) error {
	switch {
	case res.OK():
		writeJSON(w, http.StatusAccepted, acceptedBody{ID: id, Status: "published"})
		return nil
	case res.TimedOut:
		return h.fail(w, r, http.StatusGatewayTimeout, errors.New("publish timed out"))
	}
	return h.fail(w, r, http.StatusBadGateway, fmt.Errorf("publish failed after %d attempts: %s", res.Attempts, publishFailure(res)))
}

// close ends the connection to the broker.
func (t *brokerTarget) close() { _ = t.publisher.Close() }

// parsePublish reads `publish <url> { ... }`.
func parsePublish(d *caddyfile.Dispenser) (PublishConfig, error) {
	var p PublishConfig
	if err := oneArg(d, &p.URL); err != nil {
		return p, err
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return p, d.Errf("publish: option %s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "name":
			err = oneArg(d, &p.Name)
		case "exchange":
			err = oneArg(d, &p.Exchange)
		case "routing_key":
			err = oneArg(d, &p.RoutingKey)
		case "subject":
			err = oneArg(d, &p.Subject)
		case "persistent":
			var v string
			if err = oneArg(d, &v); err != nil {
				return p, err
			}
			if v != "on" && v != "off" {
				return p, d.Errf("persistent must be on or off, not %q", v)
			}
			on := v == "on"
			p.Persistent = &on
		case "timeout":
			err = durationArg(d, &p.Timeout)
		case "retries":
			p.Retries, err = retriesArg(d)
		case "backoff":
			p.BackoffBase, p.BackoffMax, err = backoffArgs(d)
		case "body":
			err = oneArg(d, &p.Body)
			if err == nil && p.Body != "reshaped" && p.Body != "original" {
				return p, d.Errf("body must be reshaped or original, not %q", p.Body)
			}
		default:
			return p, d.Errf("publish: unrecognized option %q", opt)
		}
		if err != nil {
			return p, err
		}
	}
	switch publish.Kind(p.URL) {
	case "amqp":
		if p.RoutingKey == "" {
			return p, d.Errf("publish amqp needs a routing_key")
		}
		if p.Subject != "" {
			return p, d.Errf("publish: subject is for NATS; RabbitMQ takes exchange and routing_key")
		}
	case "nats":
		if p.Subject == "" {
			return p, d.Errf("publish nats needs a subject")
		}
		if p.Exchange != "" || p.RoutingKey != "" || p.Persistent != nil {
			return p, d.Errf("publish: exchange, routing_key and persistent are for RabbitMQ; NATS takes subject")
		}
	default:
		if !strings.HasPrefix(p.URL, "{") { // a whole-URL {env.*} is checked at provisioning
			return p, d.Errf("publish: the URL scheme must be amqp, amqps, nats or tls")
		}
	}
	return p, nil
}
