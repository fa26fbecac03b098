package publish

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// maxIdleChannels bounds the confirm-mode channels kept open between
// publishes; maxInFlight bounds the publishes in flight (each on a channel
// of its own), well under RabbitMQ's default channel_max of 2047; more
// callers wait for a turn.
const (
	maxIdleChannels = 32
	maxInFlight     = 256
)

// amqpPublisher keeps one connection and a pool of confirm-mode channels.
// Each channel carries one publish at a time, so a basic.return that the
// broker sends before its confirm belongs to that publish. A closed
// connection (a broker restart) is dialled again by the next publish.
type amqpPublisher struct {
	url    string
	opts   Options
	redact redactor
	turns  chan struct{}

	mu     sync.Mutex
	conn   *amqp.Connection
	idle   []*confirmChannel
	closed bool
}

type confirmChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

func newAMQP(rawURL string, opts Options) (*amqpPublisher, error) {
	if _, err := amqp.ParseURI(rawURL); err != nil {
		return nil, fmt.Errorf("invalid AMQP URL %s: %w", Redact(rawURL), newRedactor(rawURL).wrap(err))
	}
	return &amqpPublisher{url: rawURL, opts: opts, redact: newRedactor(rawURL), turns: make(chan struct{}, maxInFlight)}, nil
}

// Publish sends m with the mandatory flag and waits for the broker's
// confirm. A returned (unroutable) message is ErrUnroutable; a nack or a
// channel closed before the confirm is ErrNotConfirmed.
func (p *amqpPublisher) Publish(ctx context.Context, m Message) error {
	select {
	case p.turns <- struct{}{}:
		defer func() { <-p.turns }()
	case <-ctx.Done():
		return ctx.Err()
	}
	cc, err := p.channel(ctx)
	if err != nil {
		return p.redact.wrap(err)
	}
	mode := amqp.Persistent
	if p.opts.Transient {
		mode = amqp.Transient
	}
	dc, err := cc.ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.Key, true, false, amqp.Publishing{
		Headers:      amqp.Table{HeaderHook: m.Hook, HeaderAttempt: attemptHeader(m.Attempt)},
		ContentType:  "application/json",
		DeliveryMode: mode,
		MessageId:    m.ID,
		Timestamp:    time.Now(),
		Body:         m.Body,
	})
	if err != nil {
		p.discard(cc)
		return p.redact.wrap(fmt.Errorf("amqp publish: %w", err))
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// the confirm may still come; this channel's next publish must
		// not meet its return
		p.discard(cc)
		return err
	}
	// the broker sends basic.return before the confirm, and the client
	// hands it over before it resolves the confirm
	select {
	case ret := <-cc.returns:
		p.release(cc)
		return fmt.Errorf("%w (exchange %q, routing key %q: %d %s)", ErrUnroutable, ret.Exchange, ret.RoutingKey, ret.ReplyCode, ret.ReplyText)
	default:
	}
	if !acked {
		if cc.ch.IsClosed() {
			p.discard(cc)
		} else {
			p.release(cc)
		}
		return ErrNotConfirmed
	}
	p.release(cc)
	return nil
}

// attemptHeader is the attempt number as an AMQP long (int32), which
// every client library reads.
func attemptHeader(n int) int32 {
	if n < 0 || n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

// channel takes an idle channel or opens one, dialling the broker when
// there is no open connection.
func (p *amqpPublisher) channel(ctx context.Context) (*confirmChannel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		cc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !cc.ch.IsClosed() && !cc.conn.IsClosed() {
			return cc, nil
		}
	}
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := p.dial(ctx)
		if err != nil {
			return nil, err
		}
		p.conn = conn
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("amqp confirm mode: %w", err)
	}
	return &confirmChannel{conn: p.conn, ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1))}, nil
}

func (p *amqpPublisher) dial(ctx context.Context) (*amqp.Connection, error) {
	timeout := p.opts.DialTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	conn, err := amqp.DialConfig(p.url, amqp.Config{
		Properties: amqp.Table{"connection_name": "webhook_gateway"},
		Heartbeat:  10 * time.Second,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// bounds the AMQP handshake; cleared once it is done
			return c, c.SetDeadline(time.Now().Add(timeout))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("amqp connect: %w", err)
	}
	return conn, nil
}

func (p *amqpPublisher) release(cc *confirmChannel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleChannels || cc.ch.IsClosed() {
		_ = cc.ch.Close()
		return
	}
	p.idle = append(p.idle, cc)
}

func (p *amqpPublisher) discard(cc *confirmChannel) { _ = cc.ch.Close() }

// Close closes the connection; publishes in flight end with an error.
func (p *amqpPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.idle = nil
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return p.redact.wrap(err)
}
