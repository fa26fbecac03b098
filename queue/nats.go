// The NATS store keeps events in a JetStream cluster shared by several
// gateway instances. It is built from four JetStream assets named after a
// prefix (NATSOptions.Stream, default "webhook_gateway"), all replicated
// (R3 by default; the servers should run with sync_interval: always):
//
//   - KV bucket <prefix>_events: key the record's store key (16 hex digits
//     of the enqueue time, then a suffix of the instance that enqueued it),
//     value the JSON record (status, attempts, due time, lease generation,
//     body, request fields). The run-log records of Record are finished
//     when written and have no ticket. It is the source of truth for Get,
//     List, Stats and Replay, and
//     every change is a compare-and-set on the key's revision, so two
//     instances never both lease one record, and an outcome is recorded
//     only if the lease generation it names is still the record's.
//   - Work-queue stream <prefix>_work with one durable pull consumer
//     ("workers", explicit ack, no delivery limit) shared by every instance.
//     Its messages are tickets: "look at record K at time T". Each record
//     names the stream sequence of its current ticket; a ticket with an
//     older sequence is stale and is dropped when it comes up.
//   - KV bucket <prefix>_dedup with per-key TTL (the dedup window): key
//     hex(hook).hex(id), value the end of the window.
//   - Stream <prefix>_dead: a copy of every record that goes dead, for
//     operators and for tools that consume dead letters.
//   - KV bucket <prefix>_hooks: the hooks issued at run time and their
//     token index (see tokens_nats.go).
//   - KV bucket <prefix>_results: request-reply results, with per-message
//     TTLs (see results_nats.go).
//
// Enqueue checks the dedup key, publishes a ticket per record (the first
// with a Nats-Msg-Id derived from the dedup key and its revision, so two
// instances racing with the same event store it once), writes the records,
// and only then records the dedup key: a crash in between gives an extra
// delivery, never a lost event. Every write waits for JetStream's
// acknowledgement, that is a quorum of replicas; when that fails or times
// out the error wraps ErrUnavailable. The whole Enqueue is bounded by
// NATSOptions.AcceptTimeout. While a stream changes leader, a write sent
// to the old one gets no answer: each write of an accept that gets none
// in half of the time left, or is refused as leaderless, is tried once
// more in the rest, made harmless if the first try was stored after all
// (the first ticket's Nats-Msg-Id, a record found already there is this
// accept's own, an extra ticket older than the record's is dropped).
// The records of one Enqueue are
// separate writes: a crash among them stores some, the sender gets no 202
// and sends again, and the actions already stored are delivered twice.
// EnqueueOptions.LeaseFor is not supported: the records are left queued.
//
// Lease fetches tickets. A ticket not yet due by the store's clock goes
// back with NakWithDelay until it is; a due ticket whose record is queued
// (or delivering with an expired lease) is leased: a new ticket due at the
// lease's end is published, the record is set delivering with that ticket
// and the next generation, and the consumed ticket is acked. No JetStream
// message is held for the length of a lease, so each Lease call chooses
// its own lease time, and AckWait only matters when an instance dies in
// the middle of a Lease. Retry and Defer publish a ticket due after the
// delay; Ack and Dead leave the lease ticket, which is dropped when it
// comes up (the record is final). Writes always publish the new ticket
// before the record names it, so every queued or delivering record has a
// pending ticket at its due time, across crashes of any instance; a ticket
// newer than its record (a write in flight, or a writer that died before
// it) is put back for a grace period, then dropped.
//
// Reads are consistent with completed writes: buckets are read through
// their stream leader (no direct gets from replicas), Lease makes sure the
// consumer has caught up with the tickets its instance published, and List
// and Stats read a watch until it reaches the last revision of the bucket.
//
// Due times come from the injectable clock (NATSOptions.Now) and are kept
// in the records and tickets; JetStream delays only decide when a ticket is
// looked at again, capped by NATSOptions.MaxDelay. With the real clock the
// delays match the due times; with a settable clock a short MaxDelay makes
// tickets come back often enough to follow it.
package queue

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions configure the JetStream store.
type NATSOptions struct {
	// URLs of the NATS servers (nats://host:port, tls://...). Required.
	URLs []string
	// Stream is the prefix of the streams, buckets and subjects: letters,
	// digits, '-' and '_'. Default "webhook_gateway".
	Stream string
	// Replicas of every stream and bucket. Default 3; 1 for a single node.
	Replicas int
	// Now is the clock of due times and leases; nil is time.Now.
	Now func() time.Time
	// CredsFile is a NATS credentials file (JWT and nkey seed).
	CredsFile string
	// TLS configures TLS to the servers; nil uses the URL scheme's default.
	TLS *tls.Config
	// Name is the connection name shown by the servers. Default
	// "webhook_gateway".
	Name string
	// Timeout bounds every operation (and the dial) when the caller's
	// context has no deadline. Default 5s.
	Timeout time.Duration
	// AcceptTimeout bounds one Enqueue, every write and retry included,
	// whatever the caller's deadline (an earlier one still applies): an
	// accept is acknowledged by JetStream within it or fails with
	// ErrUnavailable, so that a sender waiting on it gets its 503 well
	// before its own timeout. Default 2s.
	AcceptTimeout time.Duration
	// ReconnectWait is the pause between reconnection attempts. Default
	// 250ms.
	ReconnectWait time.Duration
	// LeaseWait is how long Lease waits for tickets when none is
	// available at once. Default 100ms.
	LeaseWait time.Duration
	// MaxDelay caps the JetStream delay of a ticket that is not yet due:
	// it is looked at again after at most this long. Default 1h.
	MaxDelay time.Duration
	// AckWait is how long a ticket fetched by an instance that then dies
	// stays invisible to the others. Default 30s.
	AckWait time.Duration
	// DuplicateWindow is the JetStream duplicate window of tickets
	// (Nats-Msg-Id), and how long dedup markers are kept. Default 2m.
	DuplicateWindow time.Duration
	// MaxPending caps the tickets held by the consumer (waiting or in
	// flight); -1 is unlimited. Default -1.
	MaxPending int
	// DeadMaxAge is how long the dead-letter stream keeps a message.
	// Default 0: until removed by an operator.
	DeadMaxAge time.Duration
}

// NATS is the store on a NATS JetStream cluster; see the package
// documentation for its layout.
type NATS struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	events   jetstream.KeyValue
	dedup    jetstream.Stream
	cons     jetstream.Consumer
	now      func() time.Time
	opts     NATSOptions
	workSubj string // <prefix>.work.
	deadSubj string // <prefix>.dead.
	dedupPre string // $KV.<prefix>_dedup.
	evStream jetstream.Stream
	work     jetstream.Stream
	keys     keyGen
	evPre    string // $KV.<prefix>_events.
	// issued hooks (tokens_nats.go)
	hooks      jetstream.KeyValue
	hookStream jetstream.Stream
	results    jetstream.KeyValue // results_nats.go
	resStream  jetstream.Stream
	grace      time.Duration
	// published is the highest ticket sequence this instance published.
	published atomic.Uint64
	// trimmed: Trim left purge markers that the next Purge removes.
	trimmed atomic.Bool
}

// DefaultNATSAcceptTimeout is the default NATSOptions.AcceptTimeout.
const DefaultNATSAcceptTimeout = 2 * time.Second

var natsPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

const consumerName = "workers"

// OpenNATS connects to the cluster and creates the streams, buckets and
// consumer if they do not exist yet (or updates them to opts).
func OpenNATS(ctx context.Context, opts NATSOptions) (*NATS, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("nats store: no server URL")
	}
	if opts.Stream == "" {
		opts.Stream = "webhook_gateway"
	}
	if !natsPrefix.MatchString(opts.Stream) {
		return nil, fmt.Errorf("nats store: stream prefix %q: only letters, digits, '-' and '_'", opts.Stream)
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Name == "" {
		opts.Name = "webhook_gateway"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.AcceptTimeout <= 0 {
		opts.AcceptTimeout = DefaultNATSAcceptTimeout
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = 250 * time.Millisecond
	}
	if opts.LeaseWait <= 0 {
		opts.LeaseWait = 100 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Hour
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.DuplicateWindow < time.Second {
		opts.DuplicateWindow = 2 * time.Minute
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = -1
	}

	copts := []nats.Option{
		nats.Name(opts.Name),
		nats.Timeout(opts.Timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(opts.ReconnectWait),
		// Fail writes while disconnected instead of buffering them: the
		// sender must get 503 now, not a write that lands later.
		nats.ReconnectBufSize(-1),
	}
	if opts.CredsFile != "" {
		copts = append(copts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.TLS != nil {
		copts = append(copts, nats.Secure(opts.TLS))
	}
	nc, err := nats.Connect(strings.Join(opts.URLs, ","), copts...)
	if err != nil {
		return nil, fmt.Errorf("nats store: connecting: %w: %w", ErrUnavailable, err)
	}
	n := &NATS{
		nc:       nc,
		now:      opts.Now,
		opts:     opts,
		workSubj: opts.Stream + ".work.",
		deadSubj: opts.Stream + ".dead.",
		dedupPre: "$KV." + opts.Stream + "_dedup.",
		evPre:    "$KV." + opts.Stream + "_events.",
		grace:    max(time.Minute, 4*opts.Timeout),
	}
	// Keys end with 8 random hex digits of this instance, so instances
	// enqueueing at the same nanosecond make different keys.
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		nc.Close()
		return nil, err
	}
	n.keys.suffix = hex.EncodeToString(suffix[:])
	if err := n.setup(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats store: %w: %w", ErrUnavailable, err)
	}
	return n, nil
}

func (n *NATS) setup(ctx context.Context) error {
	// Creating the streams happens once, when a config is loaded, and a
	// replicated stream's creation waits for its group to elect a leader:
	// on a cluster that is still forming or busy that outlasts one
	// operation's Timeout, so the whole setup has a longer bound.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(setupTimeout, 6*n.opts.Timeout))
		defer cancel()
	}
	js, err := jetstream.New(n.nc)
	if err != nil {
		return err
	}
	n.js = js
	p, r := n.opts.Stream, n.opts.Replicas
	// Buckets are KV streams created here rather than through
	// CreateKeyValue so that reads go to the stream leader (no direct
	// gets from a lagging replica): a record read after a write sees it.
	bucket := func(name string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:              "KV_" + name,
			Subjects:          []string{"$KV." + name + ".>"},
			MaxMsgsPerSubject: 1,
			MaxMsgs:           -1,
			MaxBytes:          -1,
			MaxMsgSize:        -1,
			MaxConsumers:      -1,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			AllowRollup:       true,
			DenyDelete:        true,
			Discard:           jetstream.DiscardNew,
			Duplicates:        2 * time.Minute,
		}
	}
	events := bucket(p + "_events")
	hooks := bucket(p + "_hooks")
	dedup := bucket(p + "_dedup")
	dedup.AllowMsgTTL = true
	dedup.SubjectDeleteMarkerTTL = n.opts.DuplicateWindow
	streams := []jetstream.StreamConfig{events, hooks, dedup, {
		Name:       p + "_work",
		Subjects:   []string{p + ".work.>"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   r,
		Duplicates: n.opts.DuplicateWindow,
	}, {
		Name:       p + "_dead",
		Subjects:   []string{p + ".dead.>"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   r,
		Duplicates: 2 * time.Minute,
		MaxAge:     n.opts.DeadMaxAge,
	}}
	for _, cfg := range streams {
		if err := n.setupStep(ctx, "stream "+cfg.Name, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			return err
		}); err != nil {
			return err
		}
	}
	lookups := []struct {
		name string
		get  func(ctx context.Context) error
	}{
		{"bucket events", func(ctx context.Context) (err error) { n.events, err = js.KeyValue(ctx, p+"_events"); return }},
		{"stream dedup", func(ctx context.Context) (err error) { n.dedup, err = js.Stream(ctx, "KV_"+p+"_dedup"); return }},
		{"stream events", func(ctx context.Context) (err error) { n.evStream, err = js.Stream(ctx, "KV_"+p+"_events"); return }},
		{"bucket hooks", func(ctx context.Context) (err error) { n.hooks, err = js.KeyValue(ctx, p+"_hooks"); return }},
		{"stream hooks", func(ctx context.Context) (err error) { n.hookStream, err = js.Stream(ctx, "KV_"+p+"_hooks"); return }},
		{"stream work", func(ctx context.Context) (err error) { n.work, err = js.Stream(ctx, p+"_work"); return }},
	}
	for _, l := range lookups {
		if err := n.setupStep(ctx, l.name, l.get); err != nil {
			return err
		}
	}
	if err := n.setupResults(ctx, bucket(p+"_results")); err != nil {
		return err
	}
	return n.setupStep(ctx, "consumer", func(ctx context.Context) (err error) {
		n.cons, err = js.CreateOrUpdateConsumer(ctx, p+"_work", jetstream.ConsumerConfig{
			Durable:       consumerName,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       n.opts.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: n.opts.MaxPending,
		})
		return err
	})
}

// setupStep runs one request of the setup, bounded by setupTry, and
// again while it fails the way a request fails on a cluster that is
// forming, short of nodes or between leaders (no answer in time, no
// responders, no peers to place a stream on, an API error saying so) and
// ctx, the setup's bound, allows. Every request of the setup is
// idempotent.
func (n *NATS) setupStep(ctx context.Context, what string, f func(context.Context) error) error {
	for {
		try, cancel := context.WithTimeout(ctx, max(setupTry, n.opts.Timeout))
		err := f(try)
		cancel()
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		again := leaderless(err) || errors.Is(err, context.DeadlineExceeded) ||
			errors.As(err, &apiErr) && apiErr.ErrorCode == errClusterNoPeers
		if !again || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(retryPause):
		}
	}
}

// Close closes the connection.
func (n *NATS) Close() error {
	n.nc.Close()
	return nil
}

// setupTimeout bounds the creation of the store's streams at open, and
// setupTry one request of it.
const (
	setupTimeout = 30 * time.Second
	setupTry     = 10 * time.Second
)

// opCtx bounds ctx by the operation timeout unless it has a deadline.
func (n *NATS) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.opts.Timeout)
}

// natsRecord is the stored form of an event.
type natsRecord struct {
	Event
	// Ticket is the sequence of the current ticket; older ones are stale.
	Ticket uint64 `json:"ticket"`
}

// ticket asks a worker to look at a record at a time.
type ticket struct {
	Key string `json:"key"`
	Due int64  `json:"due"` // unix nanoseconds
}

// dedupKey is the key of the dedup mark of an event id of a hook.
func dedupKey(hook, id string) string {
	return hex.EncodeToString([]byte(hook)) + "." + hex.EncodeToString([]byte(id))
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

// errMsgIDInProcess is JetStream's answer to a publish whose Nats-Msg-Id
// another publish is still writing.
const errMsgIDInProcess jetstream.ErrorCode = 10158

func isMsgIDInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errMsgIDInProcess
}

// jetstream's error codes of a cluster between leaders
const (
	errClusterNotAvail  jetstream.ErrorCode = 10008 // temporarily unavailable
	errClusterNotLeader jetstream.ErrorCode = 10009 // cannot handle the request
	errStreamOffline    jetstream.ErrorCode = 10118
	// no peers to place a replicated stream on: they have not joined
	// yet, or are down
	errClusterNoPeers jetstream.ErrorCode = 10005
)

// leaderless reports whether err is what a write meets while its stream
// or the client's server is between leaders: no responders, an API error
// saying so, or the connection moving to another server.
func leaderless(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errClusterNotAvail, errClusterNotLeader, errStreamOffline:
			return true
		}
		return apiErr.Code == 503
	}
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// pendingPause is the pause between reads of a record whose write is
// still being applied.
const pendingPause = 20 * time.Millisecond

// retryPause is the pause before the second try of a write refused at
// once (no responders, a client reconnecting): about an election of a
// leader that steps down, or a reconnection.
const retryPause = 250 * time.Millisecond

// twice runs a write of an accept, and once more if the first try failed
// the way a change of stream leader makes writes fail: no answer within
// its share of the time (the leader died with the request), or refused at
// once as leaderless. The first try gets half of what remains of ctx, the
// second the rest, so ctx's deadline bounds both. A write that got no
// answer may have been stored all the same: the caller makes its second
// try harmless (a Nats-Msg-Id, or a record found already there).
func twice[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return op(ctx)
	}
	first, cancel := context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
	v, err := op(first)
	timedOut := first.Err() != nil
	cancel()
	if err == nil || ctx.Err() != nil {
		return v, err
	}
	switch {
	case timedOut:
	case leaderless(err):
		pause := min(retryPause, time.Until(dl)/2)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return v, err
		}
	default:
		return v, err
	}
	return op(ctx)
}

func (n *NATS) getRecord(ctx context.Context, key string) (*natsRecord, uint64, error) {
	e, err := n.events.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	var rec natsRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("record %s: %w", key, err)
	}
	return &rec, e.Revision(), nil
}

func (n *NATS) publishTicket(ctx context.Context, hook, key string, due time.Time, msgID string) (*jetstream.PubAck, error) {
	data, err := json.Marshal(ticket{Key: key, Due: due.UnixNano()})
	if err != nil {
		return nil, err
	}
	var po []jetstream.PublishOpt
	if msgID != "" {
		po = append(po, jetstream.WithMsgID(msgID))
	}
	ack, err := n.js.Publish(ctx, n.workSubj+hex.EncodeToString([]byte(hook)), data, po...)
	if err == nil {
		for cur := n.published.Load(); cur < ack.Sequence && !n.published.CompareAndSwap(cur, ack.Sequence); cur = n.published.Load() {
		}
	}
	return ack, err
}

// dedupLookup reports whether key is within its dedup window, and the
// sequence of the key's last message (a value or a removal marker; 0 if
// none), which the next write of the key expects.
func (n *NATS) dedupLookup(ctx context.Context, key string, now time.Time) (bool, uint64, error) {
	m, err := n.dedup.GetLastMsgForSubject(ctx, n.dedupPre+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	if m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return false, m.Sequence, nil
	}
	until, err := strconv.ParseInt(string(m.Data), 10, 64)
	return err == nil && until > now.UnixNano(), m.Sequence, nil
}

// Enqueue stores the records of one request durably: it returns once
// their tickets and records are acknowledged by JetStream. The records are
// left queued whatever opts.LeaseFor says.
func (n *NATS) Enqueue(ctx context.Context, evs []*Event, opts EnqueueOptions) error {
	if err := checkBatch(evs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The accept's bound, whatever the caller's deadline: the sender is
	// answered 503 well before it gives up on its request.
	ctx, cancel := context.WithTimeout(ctx, n.opts.AcceptTimeout)
	defer cancel()
	now := n.now()
	hook, id := evs[0].Hook, evs[0].ID
	dkey := dedupKey(hook, id)
	var dedupSeq uint64
	msgID := ""
	if opts.Dedup > 0 {
		type found struct {
			live bool
			seq  uint64
		}
		f, err := twice(ctx, func(ctx context.Context) (found, error) {
			live, seq, err := n.dedupLookup(ctx, dkey, now)
			return found{live, seq}, err
		})
		if err != nil {
			return unavailable(err)
		}
		if f.live {
			return ErrDuplicate
		}
		dedupSeq = f.seq
		msgID = dkey + "." + strconv.FormatUint(f.seq, 10)
	}
	keys := n.keys.next(now, len(evs))
	recs := make([]*natsRecord, len(evs))
	for i, ev := range evs {
		rec := &natsRecord{Event: *ev}
		if err := expandHeaders(&rec.Event); err != nil {
			return err
		}
		rec.Key, rec.Status, rec.UpdatedAt, rec.DueAt, rec.Attempts, rec.Deferrals, rec.Gen = keys[i], StatusQueued, now, now, nil, 0, 0
		if rec.ReceivedAt.IsZero() {
			rec.ReceivedAt = now
		}
		recs[i] = rec
	}
	// The first ticket claims the event id among instances (Nats-Msg-Id).
	// Its second try, if any, meets the first one's message as a
	// duplicate when that one was stored: settleDuplicate finds it ours.
	ack, err := twice(ctx, func(ctx context.Context) (*jetstream.PubAck, error) {
		ack, err := n.publishTicket(ctx, hook, recs[0].Key, now, msgID)
		for wait := 2 * time.Millisecond; isMsgIDInProcess(err); wait = min(2*wait, 100*time.Millisecond) {
			// Another instance is publishing the same event right now;
			// asking again after its write gives its sequence as a
			// duplicate.
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			ack, err = n.publishTicket(ctx, hook, recs[0].Key, now, msgID)
		}
		return ack, err
	})
	if err != nil {
		return unavailable(err)
	}
	if ack.Duplicate {
		err = n.settleDuplicate(ctx, dkey, ack.Sequence, recs, now)
	} else {
		recs[0].Ticket = ack.Sequence
		err = n.store(ctx, recs)
	}
	if err != nil {
		return unavailable(err)
	}
	if opts.Dedup > 0 {
		// The records are stored: a failure to record the key only weakens
		// dedup (one more delivery if the sender retries), so it is not
		// reported as a failed enqueue.
		_, _ = n.js.Publish(ctx, n.dedupPre+dkey, []byte(strconv.FormatInt(now.Add(opts.Dedup).UnixNano(), 10)),
			jetstream.WithExpectLastSequencePerSubject(dedupSeq), jetstream.WithMsgTTL(max(opts.Dedup, time.Second)))
	}
	for i, ev := range evs {
		rec := recs[i]
		ev.Key, ev.Status, ev.UpdatedAt, ev.DueAt, ev.ReceivedAt, ev.Attempts, ev.Deferrals, ev.Gen = rec.Key, rec.Status, rec.UpdatedAt, rec.DueAt, rec.ReceivedAt, nil, 0, 0
	}
	return nil
}

// store publishes the tickets the records do not have yet, then creates
// the records.
func (n *NATS) store(ctx context.Context, recs []*natsRecord) error {
	for _, rec := range recs {
		if rec.Ticket != 0 {
			continue
		}
		// A first try stored without an answer leaves a ticket older
		// than the one the record names: dropped when it comes up.
		ack, err := twice(ctx, func(ctx context.Context) (*jetstream.PubAck, error) {
			return n.publishTicket(ctx, rec.Hook, rec.Key, rec.DueAt, "")
		})
		if err != nil {
			return err
		}
		rec.Ticket = ack.Sequence
	}
	for _, rec := range recs {
		val, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		tries := 0
		_, err = twice(ctx, func(ctx context.Context) (uint64, error) {
			tries++
			return n.events.Create(ctx, rec.Key, val)
		})
		if err != nil && tries > 1 && isConflict(err) {
			// The key is this call's own (keys are unique to the
			// instance): the first try was stored without an answer.
			err = n.ownRecord(ctx, rec)
		}
		if err != nil {
			return fmt.Errorf("record %s: %w", rec.Key, err)
		}
	}
	return nil
}

// ownRecord checks that the record a retried create found already there
// is rec, written by the first try (a worker may have leased it since).
//
// The conflict can come from the first try still in flight: the stream
// leader refuses the second create against the first's pending write,
// which a read does not show until it is applied. So a record not found
// is read again until ctx ends.
func (n *NATS) ownRecord(ctx context.Context, rec *natsRecord) error {
	got, _, err := n.getRecord(ctx, rec.Key)
	for errors.Is(err, ErrNotFound) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the first write of the record was not applied in time: %w", err)
		case <-time.After(pendingPause):
		}
		got, _, err = n.getRecord(ctx, rec.Key)
	}
	if err != nil {
		return err
	}
	if got.ID != rec.ID || got.Hook != rec.Hook || got.Action != rec.Action || !got.ReceivedAt.Equal(rec.ReceivedAt) {
		return fmt.Errorf("record %s exists with another event", rec.Key)
	}
	return nil
}

// settleDuplicate handles a first ticket JetStream already had (same
// Nats-Msg-Id): normally another instance is storing the same event at the
// same moment, and this one is a duplicate once that instance's record is
// there. If it does not appear (the other writer died before writing it),
// this instance stores the event.
func (n *NATS) settleDuplicate(ctx context.Context, dkey string, seq uint64, recs []*natsRecord, now time.Time) error {
	m, err := n.work.GetMsg(ctx, seq)
	switch {
	case err == nil:
		var t ticket
		if err := json.Unmarshal(m.Data, &t); err != nil || t.Key == "" {
			break
		}
		if t.Key == recs[0].Key {
			// Our own first ticket: an earlier try of this accept
			// stored it without an answer.
			recs[0].Ticket = seq
			return n.store(ctx, recs)
		}
		// Wait for the other instance's record for half of the time
		// left, then store the event here.
		wait := 5 * time.Millisecond
		half := n.opts.Timeout / 2
		if dl, ok := ctx.Deadline(); ok {
			half = time.Until(dl) / 2
		}
		for deadline := time.Now().Add(half); ; {
			_, _, err := n.getRecord(ctx, t.Key)
			if err == nil {
				return ErrDuplicate
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			if time.Now().Add(wait).After(deadline) {
				break
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
			wait = min(2*wait, 200*time.Millisecond)
		}
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// The other instance's ticket was consumed: its record was there
		// (and is marked by now), or it died and the ticket was dropped.
		live, _, err := n.dedupLookup(ctx, dkey, now)
		if err != nil {
			return err
		}
		if live {
			return ErrDuplicate
		}
	default:
		return err
	}
	// The original ticket may be gone by now: publish fresh ones.
	return n.store(ctx, recs)
}

// Lease fetches tickets and leases the due events they point at.
func (n *NATS) Lease(ctx context.Context, limit int, leaseFor time.Duration) ([]*Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	now := n.now()
	deadline := time.Now().Add(n.opts.LeaseWait)
	// Every ticket this instance published before now must be seen: the
	// consumer's leader may be a replica that has not applied it yet.
	target, seen := n.published.Load(), uint64(0)
	var out []*Event
	short := false
	for len(out) < limit {
		want := limit - len(out)
		var batch jetstream.MessageBatch
		var err error
		if short {
			remaining := time.Until(deadline)
			if remaining < 5*time.Millisecond {
				break
			}
			if seen < target {
				caughtUp, pending, err := n.consumerHas(ctx, target)
				if err != nil {
					if len(out) > 0 {
						break
					}
					return nil, unavailable(err)
				}
				if caughtUp {
					seen = target
				}
				if !caughtUp || pending {
					if !caughtUp {
						time.Sleep(2 * time.Millisecond)
					}
					short = false
					continue
				}
			}
			if len(out) > 0 {
				break
			}
			// Nothing due yet: wait a little for new tickets and for
			// delays about to end.
			batch, err = n.cons.Fetch(want, jetstream.FetchMaxWait(remaining))
		} else {
			batch, err = n.cons.FetchNoWait(want)
		}
		if err != nil {
			if len(out) > 0 {
				break
			}
			return nil, unavailable(err)
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			if meta, err := m.Metadata(); err == nil {
				seen = max(seen, meta.Sequence.Stream)
			}
		}
		evs, err := n.handleTickets(ctx, msgs, now, leaseFor)
		out = append(out, evs...)
		if err == nil {
			err = batch.Error()
		}
		if err != nil {
			if len(out) > 0 {
				break
			}
			return nil, unavailable(err)
		}
		if len(msgs) < want {
			short = true
		}
	}
	return out, nil
}

// consumerHas reports whether the consumer's view of the work stream
// reaches seq, and whether it has tickets it has not delivered yet.
func (n *NATS) consumerHas(ctx context.Context, seq uint64) (bool, bool, error) {
	info, err := n.cons.Info(ctx)
	if err != nil {
		return false, false, err
	}
	return info.Delivered.Stream+info.NumPending >= seq, info.NumPending > 0, nil
}

// handleTickets handles a batch concurrently, keeping its order.
func (n *NATS) handleTickets(ctx context.Context, msgs []jetstream.Msg, now time.Time, leaseFor time.Duration) ([]*Event, error) {
	res := make([]*Event, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, m := range msgs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res[i], errs[i] = n.handleTicket(ctx, m, now, leaseFor)
		})
	}
	wg.Wait()
	var out []*Event
	for _, ev := range res {
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out, errors.Join(errs...)
}

// later puts a ticket back until d has passed (at most MaxDelay).
func (n *NATS) later(m jetstream.Msg, d time.Duration) {
	d = min(d, n.opts.MaxDelay)
	if d <= 0 {
		_ = m.Nak()
		return
	}
	_ = m.NakWithDelay(d)
}

// handleTicket leases the event of a due, current ticket; it acks stale
// tickets and puts back those not due yet.
func (n *NATS) handleTicket(ctx context.Context, m jetstream.Msg, now time.Time, leaseFor time.Duration) (*Event, error) {
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return nil, nil
	}
	seq := meta.Sequence.Stream
	var t ticket
	if err := json.Unmarshal(m.Data(), &t); err != nil || t.Key == "" {
		_ = m.Term()
		return nil, nil
	}
	if due := time.Unix(0, t.Due); due.After(now) {
		n.later(m, due.Sub(now))
		return nil, nil
	}
	// A ticket newer than its record belongs to a write still in flight;
	// after the grace period, to a writer that died before the record.
	young := time.Since(meta.Timestamp) < n.grace
	soon := min(250*time.Millisecond, n.opts.MaxDelay)
	key := t.Key
	for range 4 {
		rec, rev, err := n.getRecord(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			if young {
				n.later(m, soon)
			} else {
				_ = m.Ack()
			}
			return nil, nil
		case err != nil:
			n.later(m, soon)
			return nil, err
		case seq < rec.Ticket:
			_ = m.Ack()
			return nil, nil
		case seq > rec.Ticket:
			if young {
				n.later(m, soon)
			} else {
				_ = m.Ack()
			}
			return nil, nil
		case rec.Status.Finished():
			_ = m.Ack()
			return nil, nil
		case rec.DueAt.After(now):
			n.later(m, rec.DueAt.Sub(now))
			return nil, nil
		}
		expiry := now.Add(leaseFor)
		ack, err := n.publishTicket(ctx, rec.Hook, key, expiry, "")
		if err != nil {
			n.later(m, soon)
			return nil, err
		}
		rec.Status, rec.DueAt, rec.UpdatedAt, rec.Ticket, rec.Gen = StatusDelivering, expiry, now, ack.Sequence, rec.Gen+1
		val, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if _, err := n.events.Update(ctx, key, val, rev); err != nil {
			if isConflict(err) {
				continue
			}
			n.later(m, soon)
			return nil, err
		}
		_ = m.Ack()
		ev := rec.Event
		return &ev, nil
	}
	n.later(m, soon)
	return nil, nil
}

// errUnchanged from a change leaves the record as it is.
var errUnchanged = errors.New("record unchanged")

// modify applies change to the record under compare-and-set, retrying on
// concurrent writes. change returns whether the record needs a ticket due
// at rec.DueAt (queued again).
func (n *NATS) modify(ctx context.Context, key string, change func(rec *natsRecord, rev uint64) (bool, error)) error {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	for range 8 {
		rec, rev, err := n.getRecord(ctx, key)
		if err != nil {
			return unavailable(err)
		}
		needTicket, err := change(rec, rev)
		if errors.Is(err, errUnchanged) {
			return nil
		}
		if err != nil {
			return unavailable(err)
		}
		if needTicket {
			ack, err := n.publishTicket(ctx, rec.Hook, key, rec.DueAt, "")
			if err != nil {
				return unavailable(err)
			}
			rec.Ticket = ack.Sequence
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = n.events.Update(ctx, key, val, rev)
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return unavailable(err)
		}
	}
	return unavailable(fmt.Errorf("record %s: too many concurrent writes", key))
}

// leased applies change under compare-and-set if l is the record's
// current lease (checked again at each try), else ErrStaleLease.
func (n *NATS) leased(ctx context.Context, l Lease, change func(rec *natsRecord, rev uint64) (bool, error)) error {
	err := n.modify(ctx, l.Key, func(rec *natsRecord, rev uint64) (bool, error) {
		if err := checkLease(&rec.Event, l); err != nil {
			return false, err
		}
		return change(rec, rev)
	})
	if errors.Is(err, ErrNotFound) {
		return ErrStaleLease
	}
	return err
}

func (n *NATS) finish(ctx context.Context, l Lease, a Attempt, status Status, after time.Duration) error {
	return n.leased(ctx, l, func(rec *natsRecord, rev uint64) (bool, error) {
		now := n.now()
		rec.Attempts = append(rec.Attempts, a)
		rec.Status, rec.UpdatedAt, rec.DueAt = status, now, time.Time{}
		switch status {
		case StatusQueued:
			rec.DueAt = now.Add(after)
			return true, nil
		case StatusDead:
			val, err := json.Marshal(&rec.Event)
			if err != nil {
				return false, err
			}
			_, err = n.js.Publish(ctx, n.deadSubj+hex.EncodeToString([]byte(rec.Hook)), val,
				jetstream.WithMsgID(rec.Key+"."+strconv.FormatUint(rev, 10)))
			return false, err
		}
		return false, nil
	})
}

// Ack records a delivered record.
func (n *NATS) Ack(ctx context.Context, l Lease, a Attempt) error {
	return n.finish(ctx, l, a, StatusDelivered, 0)
}

// Retry queues the record again after the delay.
func (n *NATS) Retry(ctx context.Context, l Lease, a Attempt, after time.Duration) error {
	return n.finish(ctx, l, a, StatusQueued, after)
}

// Dead records the record as dead and copies it to the dead-letter stream.
func (n *NATS) Dead(ctx context.Context, l Lease, a Attempt) error {
	return n.finish(ctx, l, a, StatusDead, 0)
}

// Defer queues the record again after the delay, without an attempt.
func (n *NATS) Defer(ctx context.Context, l Lease, after time.Duration) error {
	return n.leased(ctx, l, func(rec *natsRecord, _ uint64) (bool, error) {
		now := n.now()
		rec.Deferrals++
		rec.Status, rec.DueAt, rec.UpdatedAt = StatusQueued, now.Add(after), now
		return true, nil
	})
}

// Release gives a leased record back, due now, without an attempt.
func (n *NATS) Release(ctx context.Context, l Lease) error {
	err := n.leased(ctx, l, func(rec *natsRecord, _ uint64) (bool, error) {
		now := n.now()
		rec.Status, rec.DueAt, rec.UpdatedAt = StatusQueued, now, now
		return true, nil
	})
	if errors.Is(err, ErrStaleLease) {
		return nil
	}
	return err
}

// Replay queues a delivered or dead record again, due now.
func (n *NATS) Replay(ctx context.Context, key string) error {
	return n.modify(ctx, key, func(rec *natsRecord, _ uint64) (bool, error) {
		if !Replayable(&rec.Event) {
			return false, ErrNotReplayable
		}
		now := n.now()
		rec.Status, rec.DueAt, rec.UpdatedAt = StatusQueued, now, now
		return true, nil
	})
}

// Get returns one record.
func (n *NATS) Get(ctx context.Context, key string) (*Event, error) {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	rec, _, err := n.getRecord(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, unavailable(err)
	}
	return &rec.Event, nil
}

// scan reads the latest record of every key matching filter.
func (n *NATS) scan(ctx context.Context, filter string) ([]*natsRecord, error) {
	recs, err := scanKV[natsRecord](ctx, n.evStream, n.events, n.evPre, filter, "record")
	if err != nil {
		return nil, err
	}
	out := make([]*natsRecord, len(recs))
	for i := range recs {
		out[i] = &recs[i]
	}
	return out, nil
}

// scanKV reads the latest value (JSON, as T) of every key of kv matching
// filter (see latestKV). what names the values in errors.
func scanKV[T any](ctx context.Context, stream jetstream.Stream, kv jetstream.KeyValue, subjectPrefix, filter, what string) ([]T, error) {
	entries, err := latestKV(ctx, stream, kv, subjectPrefix, filter, what)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		var v T
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, e.Key(), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// latestKV reads the latest entry of every key of kv matching filter
// whose last operation is a put. The watch may be served by a replica
// that lags behind, whose initial values end (the nil marker) before the
// last completed writes; it is read until it has the last revision the
// stream leader has (subjects of the bucket's stream start with
// subjectPrefix), so it sees every completed write. Deletes and purges are
// watched too: the last revision may be one. what names the values in
// errors.
func latestKV(ctx context.Context, stream jetstream.Stream, kv jetstream.KeyValue, subjectPrefix, filter, what string) ([]jetstream.KeyValueEntry, error) {
	var last uint64
	m, err := stream.GetLastMsgForSubject(ctx, subjectPrefix+filter)
	switch {
	case err == nil:
		last = m.Sequence
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, err
	}
	w, err := kv.Watch(ctx, filter)
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	found := map[string]jetstream.KeyValueEntry{}
	var seen uint64
	initial := true
	for initial || seen < last {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("%s listing ended early", what)
			}
			if e == nil {
				initial = false
				continue
			}
			seen = max(seen, e.Revision())
			if e.Operation() != jetstream.KeyValuePut {
				delete(found, e.Key())
				continue
			}
			found[e.Key()] = e
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]jetstream.KeyValueEntry, 0, len(found))
	for _, e := range found {
		out = append(out, e)
	}
	return out, nil
}

// Stats counts events by hook and status.
func (n *NATS) Stats(ctx context.Context) (Stats, error) {
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	recs, err := n.scan(ctx, ">")
	if err != nil {
		return Stats{}, unavailable(err)
	}
	now := n.now()
	st := Stats{Counts: map[string]map[Status]int{}}
	for _, rec := range recs {
		if st.Counts[rec.Hook] == nil {
			st.Counts[rec.Hook] = map[Status]int{}
		}
		st.Counts[rec.Hook][rec.Status]++
		if (rec.Status == StatusQueued || rec.Status == StatusDelivering) && rec.DueAt.Before(now) {
			st.OldestDue = max(st.OldestDue, now.Sub(rec.DueAt))
		}
	}
	return st, nil
}

var _ Store = (*NATS)(nil)

// Purge removes finished events last changed before the given
// time. Each is re-read and removed only at the revision that was checked,
// so an event replayed meanwhile stays. Deduplication marks expire by
// themselves (per-key TTL).
func (n *NATS) Purge(ctx context.Context, before time.Time) (int, error) {
	recs, err := n.scan(ctx, ">")
	if err != nil {
		return 0, unavailable(err)
	}
	removed := 0
	for _, rec := range recs {
		if !final(rec.Status) || !rec.UpdatedAt.Before(before) {
			continue
		}
		key := rec.Key
		cur, rev, err := n.getRecord(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return removed, unavailable(err)
		}
		if !final(cur.Status) || !cur.UpdatedAt.Before(before) {
			continue
		}
		if err := n.events.Purge(ctx, key, jetstream.LastRevision(rev)); err != nil {
			if isConflict(err) {
				continue
			}
			return removed, unavailable(err)
		}
		removed++
	}
	if trimmed := n.trimmed.Swap(false); removed > 0 || trimmed {
		if err := n.events.PurgeDeletes(ctx); err != nil {
			return removed, unavailable(err)
		}
	}
	return removed, nil
}
