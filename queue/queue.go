// Package queue is the durable event store of async delivery: events are
// written durably before the sender gets 202, leased by delivery workers,
// and moved to delivered, back to queued with a delay, or to dead.
//
// One interface, Store, has two implementations: an embedded Pebble
// database (the default) and NATS (a JetStream cluster shared by several
// gateway instances). Delivery is at least once: a lease that is not acked
// before it expires makes the event due again.
//
// A stored event is typed: it holds what the sender sent and what was
// decided when it was accepted (the hook, the action index, the body, the
// per-request placeholder values the action's URL and headers use), never a
// secret. Signing keys, static headers and TLS settings come from the
// running config at each attempt.
package queue

import (
	"context"
	"errors"
	"time"
)

// Status is where an event is in its life.
type Status string

// Statuses.
const (
	StatusQueued     Status = "queued"
	StatusDelivering Status = "delivering"
	StatusDelivered  Status = "delivered"
	StatusDead       Status = "dead"
	// Statuses of run-log records: finished when written (by Record),
	// never leased.
	StatusRejected  Status = "rejected"  // refused before acceptance (method, content type, size, auth, JSON, mapping, callback URL)
	StatusPassed    Status = "passed"    // gate mode: verified and handed to the next handler
	StatusDuplicate Status = "duplicate" // a repeated id within the dedup window: answered 200, not forwarded
)

// Finished reports whether s is a final status: any but queued and
// delivering.
func (s Status) Finished() bool { return s != StatusQueued && s != StatusDelivering }

// ListScanMax is the most records one List call with a text query (Q)
// reads; a call that reaches it returns what it found with a Next cursor.
const ListScanMax = 20000

// Errors.
var (
	// ErrDuplicate: the event id was enqueued before for the hook, within
	// the dedup window.
	ErrDuplicate = errors.New("duplicate event")
	// ErrNotFound: no such event.
	ErrNotFound = errors.New("event not found")
	// ErrNotReplayable: only delivered or dead records of an action,
	// with their whole body, are replayed.
	ErrNotReplayable = errors.New("only delivered or dead events with an action and their whole body can be replayed")
	// ErrStaleLease: the lease is no longer the event's current one (it
	// expired and the event was leased again, replayed, or finished); the
	// outcome was not recorded.
	ErrStaleLease = errors.New("lease is no longer current")
	// ErrUnavailable wraps failures to write durably (disk full, engine
	// unreachable): the sender must not be told the event was accepted.
	ErrUnavailable = errors.New("event store unavailable")
)

// Event is one stored delivery (one action of one accepted request), or
// the run-log record of a request that has no delivery of its own: sync
// and gate requests, rejections and duplicates (written by Record).
type Event struct {
	// Key identifies the stored record. The store assigns it at Enqueue;
	// it is unique per record, ordered by enqueue time, and never derived
	// from the event id, so no id a sender chooses can collide with
	// another record's key.
	Key string `json:"key"`
	// ID is the event id (the sender's delivery id or a generated one),
	// sent as Idempotency-Key. Several records may share it: one per
	// action, and a re-sent id without deduplication is a new event.
	ID string `json:"id"`
	// Hook is the name of the handler that accepted the event.
	Hook string `json:"hook"`
	// Action is the index of the hook's action that delivers this record;
	// -1 for records without an action (gate, rejected, duplicate).
	Action int `json:"action"`
	// Values are the per-request placeholder values that the action's URL
	// and header templates use, resolved when the event was accepted
	// (e.g. "http.request.header.X-Tenant" -> "acme").
	Values map[string]string `json:"values,omitempty"`
	// Body is what the action sends: the received or the reshaped body.
	Body []byte `json:"body"`
	// ReceivedAt is when the request arrived.
	ReceivedAt time.Time `json:"received_at"`

	Status   Status    `json:"status"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// Deferrals counts the times the event was due but no handler of the
	// running config delivers its hook; they are not attempts.
	Deferrals int `json:"deferrals,omitempty"`
	// DueAt is when a queued event is next due; zero once finished.
	DueAt     time.Time `json:"due_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// Gen is the generation of the current lease: it grows each time the
	// event is leased, and is kept across restarts. Set on events returned
	// by Lease (and by Enqueue with LeaseFor, when the store writes them
	// leased).
	Gen uint64 `json:"gen,omitempty"`

	// Mode is the hook's mode: "sync", "async" or "gate".
	Mode string `json:"mode,omitempty"`
	// Auth is the auth method that passed ("github", "api_key", "none").
	Auth string `json:"auth,omitempty"`
	// Reason is why the request was rejected, never a secret.
	Reason string `json:"reason,omitempty"`
	// Inbound is the status answered to the sender (202 for async).
	Inbound int `json:"inbound,omitempty"`
	// Request is the method and path, "POST /hooks/github"; never the
	// query.
	Request  string `json:"request,omitempty"`
	RemoteIP string `json:"remote_ip,omitempty"`
	// Headers are the received headers, credentials redacted.
	Headers map[string][]string `json:"headers,omitempty"`
	// HeaderBlock is headers already encoded, one AppendHeader per name,
	// for a writer that has them so: the run log builds it on the
	// request path in one pass over the request's headers, with no map.
	// A store writes it when Headers is nil; what is read back is
	// Headers.
	HeaderBlock []byte `json:"-"`
	// Payload is the received body when Body is not it (reshaped, or no
	// Body kept), up to the hook's log_body.
	Payload []byte `json:"payload,omitempty"`
	// Truncated: Payload or Body was cut at log_body; not replayable.
	Truncated bool `json:"truncated,omitempty"`
}

// Replayable reports whether Replay queues a record as Get returns it: a
// delivered or dead record of an action with its whole body (not
// Truncated; a sync record recorded without its body, as with log meta,
// has a nil Body).
func Replayable(ev *Event) bool {
	return (ev.Status == StatusDelivered || ev.Status == StatusDead) && ev.Action >= 0 && !ev.Truncated &&
		(ev.Body != nil || ev.Mode == "" || ev.Mode == "async")
}

// Lease names one lease of one record: outcomes are recorded only while
// it is the record's current lease.
type Lease struct {
	Key string
	Gen uint64
}

// LeaseOf is the lease an event was handed out with.
func LeaseOf(ev *Event) Lease { return Lease{Key: ev.Key, Gen: ev.Gen} }

// Attempt is one delivery try.
type Attempt struct {
	At      time.Time     `json:"at"`
	Status  int           `json:"status,omitempty"`
	Latency time.Duration `json:"latency_ns,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// EnqueueOptions control one Enqueue.
type EnqueueOptions struct {
	// Dedup > 0: an id enqueued for the same hook within the window gives
	// ErrDuplicate and stores nothing.
	Dedup time.Duration
	// LeaseFor > 0 asks the store to write the events already leased, in
	// the same durable write, so the caller can hand them to idle workers
	// without reading them back. A store that cannot do this leaves them
	// queued; the caller tells by each event's Status after the call.
	LeaseFor time.Duration
}

// ListQuery selects events for the admin listing.
type ListQuery struct {
	Hook   string // "" for every hook
	Status Status // "" for every status
	ID     string // "" for every event id
	Cursor string // from the previous page's Next (a record key)
	Limit  int    // default 50
	// Since and Until bound ReceivedAt to [Since, Until); zero is
	// unbounded.
	Since, Until time.Time
	// Q is a case-insensitive substring of the id, or of the Payload or
	// Body text. A call with Q reads at most ListScanMax records, then
	// returns what it found with a Next cursor.
	Q string
}

// ListPage is one page of events (bodies omitted), newest first.
type ListPage struct {
	Events []*Event `json:"events"`         // empty, never nil, when nothing matches
	Next   string   `json:"next,omitempty"` // cursor of the next page, "" at the end
}

// Stats summarises the store.
type Stats struct {
	// Counts by hook, then status.
	Counts map[string]map[Status]int `json:"counts"`
	// OldestDue is the age of the oldest event due for delivery, 0 if none.
	OldestDue time.Duration `json:"oldest_due"`
}

// Store is a durable event store.
type Store interface {
	// Enqueue stores the records of one accepted request (one per action,
	// all with the same ID and Hook) in one durable write, queued and due
	// now (or leased, see EnqueueOptions), and sets each one's Key. With
	// opts.Dedup > 0 and the id seen within the window, nothing is stored
	// and the error is ErrDuplicate.
	Enqueue(ctx context.Context, evs []*Event, opts EnqueueOptions) error
	// Lease returns up to max due events, marked delivering with a new
	// generation until leaseFor has passed; then they are due again unless
	// acked, retried, deferred or dead.
	Lease(ctx context.Context, max int, leaseFor time.Duration) ([]*Event, error)
	// Ack records a successful attempt: delivered. ErrStaleLease if l is
	// not the record's current lease.
	Ack(ctx context.Context, l Lease, a Attempt) error
	// Retry records a failed attempt: queued again, due after the delay.
	Retry(ctx context.Context, l Lease, a Attempt, after time.Duration) error
	// Dead records the last failed attempt (or, for an orphaned event, the
	// reason it is given up): dead.
	Dead(ctx context.Context, l Lease, a Attempt) error
	// Defer puts back an event that could not be attempted (no handler
	// delivers its hook): queued, due after the delay, Deferrals+1, no
	// attempt recorded.
	Defer(ctx context.Context, l Lease, after time.Duration) error
	// Release gives back a leased event that was not attempted (its worker
	// is stopping): queued and due now, nothing recorded, its generation
	// kept. A stale lease is ignored (nil).
	Release(ctx context.Context, l Lease) error
	// Get returns one record with its attempts and body; ErrNotFound for
	// an unknown key.
	Get(ctx context.Context, key string) (*Event, error)
	// List returns a page of records, without bodies, payloads and
	// headers, newest first.
	List(ctx context.Context, q ListQuery) (ListPage, error)
	// Replay queues a delivered or dead record again, due now, with its
	// attempts kept. ErrNotReplayable for any other status, a record
	// without an action (Action < 0), a Truncated one and a sync one
	// recorded without its body (see Replayable).
	Replay(ctx context.Context, key string) error
	// Purge removes finished records (every status but queued and
	// delivering) last changed before the given time, with their bodies
	// and expired deduplication marks, and reports how many records it
	// removed.
	Purge(ctx context.Context, before time.Time) (int, error)
	// Stats counts records by hook and status.
	Stats(ctx context.Context) (Stats, error)
	// Record writes finished records (any status but queued and
	// delivering) in one batch, not synced, and sets each Key (ordered by
	// write time like Enqueue's). Delivered and dead records with an
	// action replay like async ones, unless Truncated.
	Record(ctx context.Context, evs []*Event) error
	// Trim removes the oldest finished records of one hook beyond keep
	// records of that hook (queued and delivering ones are never removed,
	// but count), and reports how many it removed.
	Trim(ctx context.Context, hook string, keep int) (int, error)
	// Counts counts records by hook and status with ReceivedAt >= since,
	// reading no bodies.
	Counts(ctx context.Context, since time.Time) (map[string]map[Status]int, error)
	// Close releases the store.
	Close() error
}
