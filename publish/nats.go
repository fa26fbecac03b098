package publish

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsPublisher publishes to JetStream over one connection, which the
// client reconnects by itself; it is made by the first publish.
type natsPublisher struct {
	url    string
	opts   Options
	redact redactor

	mu     sync.Mutex
	nc     *nats.Conn
	js     jetstream.JetStream
	closed bool
}

func newNATS(rawURL string, opts Options) (*natsPublisher, error) {
	return &natsPublisher{url: rawURL, opts: opts, redact: newRedactor(rawURL)}, nil
}

// Publish sends m to the subject m.Key with Nats-Msg-Id = m.ID and waits
// for the stream's acknowledgement. A subject no stream takes fails (no
// responders).
func (p *natsPublisher) Publish(ctx context.Context, m Message) error {
	js, err := p.jetStream()
	if err != nil {
		return p.redact.wrap(err)
	}
	msg := nats.NewMsg(m.Key)
	msg.Data = m.Body
	msg.Header.Set(HeaderHook, m.Hook)
	msg.Header.Set(HeaderAttempt, strconv.Itoa(m.Attempt))
	msg.Header.Set("Content-Type", "application/json")
	var opts []jetstream.PublishOpt
	if m.ID != "" {
		opts = append(opts, jetstream.WithMsgID(m.ID))
	}
	if _, err := js.PublishMsg(ctx, msg, opts...); err != nil {
		return p.redact.wrap(fmt.Errorf("jetstream publish: %w", err))
	}
	return nil
}

func (p *natsPublisher) jetStream() (jetstream.JetStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.js != nil {
		return p.js, nil
	}
	nc, err := nats.Connect(p.url,
		nats.Name("webhook_gateway"),
		nats.Timeout(p.opts.DialTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p.nc, p.js = nc, js
	return js, nil
}

// Close drains nothing: a publish in flight ends with an error.
func (p *natsPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.nc != nil {
		p.nc.Close()
	}
	return nil
}
