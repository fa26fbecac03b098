// Package queue is the durable event store of async delivery: events are
// written durably before the sender gets 202, leased by delivery workers,
// and moved to delivered, back to queued with a delay, or to dead.
//
// One interface, Store, has two implementations: Bolt (an embedded bbolt
// file, the default) and NATS (a JetStream cluster shared by several
// gateway instances). Delivery is at least once: a lease that is not acked
// before it expires makes the event due again.
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
)

// Errors.
var (
	// ErrDuplicate: the event was enqueued before, within the dedup window.
	ErrDuplicate = errors.New("duplicate event")
	// ErrNotFound: no such event.
	ErrNotFound = errors.New("event not found")
	// ErrNotReplayable: only delivered or dead events are replayed.
	ErrNotReplayable = errors.New("only delivered or dead events can be replayed")
	// ErrUnavailable wraps failures to write durably (disk full, engine
	// unreachable): the sender must not be told the event was accepted.
	ErrUnavailable = errors.New("event store unavailable")
)

// Event is one stored delivery.
type Event struct {
	ID        string            `json:"id"`
	Hook      string            `json:"hook"`
	Payload   []byte            `json:"payload"`
	Header    map[string]string `json:"header,omitempty"`
	Status    Status            `json:"status"`
	Attempts  []Attempt         `json:"attempts,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	DueAt     time.Time         `json:"due_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Attempt is one delivery try.
type Attempt struct {
	At      time.Time     `json:"at"`
	Status  int           `json:"status,omitempty"`
	Latency time.Duration `json:"latency_ns,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// ListQuery selects events for the admin listing.
type ListQuery struct {
	Hook   string // "" for every hook
	Status Status // "" for every status
	Cursor string // from the previous page's Next
	Limit  int    // default 50
}

// ListPage is one page of events (payloads omitted).
type ListPage struct {
	Events []*Event `json:"events"`
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
	// Enqueue stores ev (queued, due now) and returns once the write is
	// durable. With dedupWindow > 0, an event with the same hook and id
	// enqueued within the window gives ErrDuplicate and stores nothing.
	Enqueue(ctx context.Context, ev *Event, dedupWindow time.Duration) error
	// Lease returns up to max due events, marked delivering until leaseFor
	// has passed; then they are due again unless acked, retried or dead.
	Lease(ctx context.Context, max int, leaseFor time.Duration) ([]*Event, error)
	// Ack records a successful attempt: delivered.
	Ack(ctx context.Context, hook, id string, a Attempt) error
	// Retry records a failed attempt: queued again, due after the delay.
	Retry(ctx context.Context, hook, id string, a Attempt, after time.Duration) error
	// Release gives back a leased event that was not attempted (its worker
	// is stopping): queued and due now, no attempt recorded. Events in
	// other statuses are left as they are.
	Release(ctx context.Context, hook, id string) error
	// Dead records the last failed attempt: dead.
	Dead(ctx context.Context, hook, id string, a Attempt) error
	// Get returns one event with its attempts and payload.
	Get(ctx context.Context, hook, id string) (*Event, error)
	// List returns a page of events, without payloads.
	List(ctx context.Context, q ListQuery) (ListPage, error)
	// Replay queues a delivered or dead event again, due now.
	Replay(ctx context.Context, hook, id string) error
	// Purge removes delivered and dead events last changed before the
	// given time, with their payloads and expired deduplication marks,
	// and reports how many events it removed.
	Purge(ctx context.Context, before time.Time) (int, error)
	// Stats counts events by hook and status.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store.
	Close() error
}
