// Package publish delivers events to message brokers: RabbitMQ (AMQP
// 0-9-1 with publisher confirms) and NATS JetStream. A publish succeeds
// only once the broker has taken responsibility for the message: a
// RabbitMQ confirm of a routed message, a JetStream acknowledgement.
package publish

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Message is one publish.
type Message struct {
	// ID is the event id: the AMQP message id, the NATS Nats-Msg-Id
	// (JetStream drops a repeat of it within the stream's window).
	ID string
	// Exchange of an AMQP publish; "" is the default exchange.
	Exchange string
	// Key is the AMQP routing key or the NATS subject.
	Key string
	// Body is sent as is, as application/json.
	Body []byte
	// Hook and Attempt are carried in headers (Webhook-Hook,
	// Webhook-Attempt) for consumers and for tracing a redelivery.
	Hook    string
	Attempt int
}

// Publisher publishes messages to one broker. Safe for concurrent use.
type Publisher interface {
	// Publish returns nil once the broker has confirmed the message.
	Publish(ctx context.Context, m Message) error
	// Close ends the connection; Publish after Close fails.
	Close() error
}

// Options of a publisher.
type Options struct {
	// Transient turns off AMQP persistent delivery mode.
	Transient bool
	// DialTimeout bounds connecting to the broker. Default: 10s.
	DialTimeout time.Duration
}

// Header names every message carries.
const (
	HeaderHook    = "Webhook-Hook"
	HeaderAttempt = "Webhook-Attempt"
)

// Errors a publish ends with when the broker answered.
var (
	// ErrUnroutable: the broker returned the message because no queue
	// is bound for its exchange and routing key (AMQP mandatory flag).
	ErrUnroutable = errors.New("unroutable: no queue is bound for the routing key")
	// ErrNotConfirmed: the broker refused the message (nack) or the
	// channel closed before it confirmed.
	ErrNotConfirmed = errors.New("the broker did not confirm the message")
	// ErrClosed: Publish after Close.
	ErrClosed = errors.New("publisher closed")
)

// New makes a publisher for rawURL by its scheme: amqp, amqps, nats or
// tls. It does not connect; the first Publish does, so a broker that is
// down at start is not an error here.
func New(rawURL string, opts Options) (Publisher, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid broker URL %s", Redact(rawURL))
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	switch u.Scheme {
	case "amqp", "amqps":
		return newAMQP(rawURL, opts)
	case "nats", "tls":
		return newNATS(rawURL, opts)
	default:
		return nil, fmt.Errorf("broker URL scheme must be amqp, amqps, nats or tls, not %q", u.Scheme)
	}
}

// Kind is "amqp" or "nats" for a broker URL's scheme, "" for others.
func Kind(rawURL string) string {
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch strings.ToLower(scheme) {
	case "amqp", "amqps":
		return "amqp"
	case "nats", "tls":
		return "nats"
	}
	return ""
}

// Redact is rawURL with its password (or a user-only credential, as a
// NATS token) replaced by "xxxxx", for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// unparsable: hide everything before the authority's last "@"
		rest := rawURL
		prefix := ""
		if j := strings.Index(rawURL, "://"); j >= 0 {
			prefix, rest = rawURL[:j+3], rawURL[j+3:]
		}
		authority := rest
		if k := strings.IndexAny(rest, "/?#"); k >= 0 {
			authority = rest[:k]
		}
		if i := strings.LastIndex(authority, "@"); i >= 0 {
			return prefix + "xxxxx" + rest[i:]
		}
		return rawURL
	}
	if u.User == nil {
		return rawURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// redactor removes a URL's credentials from error texts, since client
// libraries may quote the URL they were given.
type redactor struct{ secrets []string }

func newRedactor(rawURL string) redactor {
	var r redactor
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return r
	}
	if p, ok := u.User.Password(); ok && p != "" {
		r.secrets = append(r.secrets, p, url.QueryEscape(p), url.PathEscape(p))
	}
	if name := u.User.Username(); name != "" {
		if _, ok := u.User.Password(); !ok {
			r.secrets = append(r.secrets, name, url.QueryEscape(name)) // a token
		}
	}
	return r
}

// redactedError keeps the chain (errors.Is) but not the text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (r redactor) wrap(err error) error {
	if err == nil || len(r.secrets) == 0 {
		return err
	}
	msg := err.Error()
	for _, s := range r.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
