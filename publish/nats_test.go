package publish_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/caddy-webhooks/gateway/internal/natstest"
	"github.com/caddy-webhooks/gateway/publish"
)

// jetStreamServer runs an in-process NATS server with JetStream on loopback
// and a stream EVENTS on events.>.
func jetStreamServer(t *testing.T) (*server.Server, jetstream.Stream) {
	t.Helper()
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	return ns, st
}

func TestNATS(t *testing.T) {
	ns, st := jetStreamServer(t)
	p, err := publish.New(ns.ClientURL(), publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx := t.Context()

	m := publish.Message{ID: "ev-1", Key: "events.acme.push", Body: []byte(`{"ref":"main"}`), Hook: "gh", Attempt: 1}
	if err := p.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	// a retry of the same event: JetStream keeps one copy
	m.Attempt = 2
	if err := p.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1 (Nats-Msg-Id dedup)", info.State.Msgs)
	}
	got, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "events.acme.push" || string(got.Data) != `{"ref":"main"}` ||
		got.Header.Get(jetstream.MsgIDHeader) != "ev-1" || got.Header.Get(publish.HeaderHook) != "gh" || got.Header.Get(publish.HeaderAttempt) != "1" {
		t.Errorf("stored %q %s %v", got.Subject, got.Data, got.Header)
	}

	// no stream takes the subject
	if err := p.Publish(ctx, publish.Message{ID: "ev-2", Key: "other.subject", Body: []byte(`{}`)}); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("publish to a subject no stream takes: %v", err)
	}
}
