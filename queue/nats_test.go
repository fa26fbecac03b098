package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/caddy-webhooks/gateway/queue"
)

// natsCluster is a JetStream cluster run in this process on loopback.
type natsCluster struct {
	tb      testing.TB
	opts    []*server.Options
	servers []*server.Server // nil while a node is down
	log     *natsLog
}

// natsLog keeps the last lines the cluster's nodes logged (notices and
// up), to be printed when the test fails: a cluster that stalls under
// load can then be read afterwards.
type natsLog struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

const natsLogLines = 4000

func (l *natsLog) add(node, level, format string, v ...any) {
	line := time.Now().Format("15:04:05.000") + " " + node + " " + level + " " + fmt.Sprintf(format, v...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines = make([]string, natsLogLines)
	}
	l.lines[l.next] = line
	l.next++
	if l.next == len(l.lines) {
		l.next, l.full = 0, true
	}
}

// dump writes the kept lines, oldest first, to tb's log if tb failed.
func (l *natsLog) dump(tb testing.TB) {
	if !tb.Failed() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	if l.full {
		out = append(out, l.lines[l.next:]...)
	}
	out = append(out, l.lines[:l.next]...)
	tb.Logf("the NATS nodes' last %d log lines:\n%s", len(out), strings.Join(out, "\n"))
}

// nodeLog is one node's server.Logger writing into a natsLog.
type nodeLog struct {
	l    *natsLog
	node string
}

func (n nodeLog) Noticef(format string, v ...any) { n.l.add(n.node, "INF", format, v...) }
func (n nodeLog) Warnf(format string, v ...any)   { n.l.add(n.node, "WRN", format, v...) }
func (n nodeLog) Fatalf(format string, v ...any)  { n.l.add(n.node, "FTL", format, v...) }
func (n nodeLog) Errorf(format string, v ...any)  { n.l.add(n.node, "ERR", format, v...) }
func (n nodeLog) Debugf(format string, v ...any)  {}
func (n nodeLog) Tracef(format string, v ...any)  {}

// startNATSCluster starts n JetStream nodes routed to each other, each with
// its own store directory, and waits until the cluster has a meta leader
// that knows every peer. Each node listens on a port the system picks
// (never one found free and then reused); it routes to the nodes started
// before it, and keeps its cluster port for a restart.
func startNATSCluster(tb testing.TB, n int) *natsCluster {
	tb.Helper()
	c := &natsCluster{tb: tb, log: &natsLog{}}
	c.servers = make([]*server.Server, n)
	// registered first, so it runs last: after the nodes stopped
	tb.Cleanup(func() { c.log.dump(tb) })
	// the store directories first: cleanups run last-registered first, so
	// the servers stop before their directories are removed
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = tb.TempDir()
	}
	tb.Cleanup(c.stopAll)
	var routes []string
	// Tests run without SyncAlways (which production clusters
	// should set): these nodes stop only by Shutdown, which writes
	// out what they hold, and no test here loses power, so a sync per
	// write guards nothing a test checks. It costs: creating a
	// replicated stream waits for several syncs on each node, a sync
	// took up to 0.4 s here while the caddy package's tests built
	// binaries, and with syncs on, one creation in CI outlasted the
	// store's 30 s setup bound. Benchmarks keep it: they measure what
	// a production cluster costs.
	_, bench := tb.(*testing.B)
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName:         fmt.Sprintf("n%d", i),
			Host:               "127.0.0.1",
			Port:               server.RANDOM_PORT,
			NoLog:              true,
			NoSigs:             true,
			JetStream:          true,
			JetStreamMaxMemory: 64 << 20,
			JetStreamMaxStore:  1 << 30,
			StoreDir:           dirs[i],
			SyncAlways:         bench,
			Cluster:            server.ClusterOpts{Name: "gateway", Host: "127.0.0.1", Port: server.RANDOM_PORT},
			Routes:             server.RoutesFromStr(strings.Join(routes, ",")),
		})
		c.start(i)
		addr := c.servers[i].ClusterAddr()
		if addr == nil {
			tb.Fatalf("node %d has no cluster address", i)
		}
		c.opts[i].Cluster.Port = addr.Port
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", addr.Port))
	}
	c.waitMeta(n)
	return c
}

func (c *natsCluster) start(i int) {
	c.tb.Helper()
	o := *c.opts[i]
	o.Routes = append(o.Routes[:0:0], o.Routes...)
	s, err := server.NewServer(&o)
	if err != nil {
		c.tb.Fatal(err)
	}
	s.SetLogger(nodeLog{c.log, o.ServerName}, false, false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		c.tb.Fatalf("node %d did not start", i)
	}
	c.servers[i] = s
}

func (c *natsCluster) stop(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

func (c *natsCluster) stopAll() {
	for i := range c.servers {
		c.stop(i)
	}
}

// waitMeta waits for a meta leader that sees peers servers.
func (c *natsCluster) waitMeta(peers int) {
	c.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			if s != nil && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) >= peers {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.tb.Fatal("no JetStream meta leader")
}

func (c *natsCluster) urls() []string {
	var u []string
	for _, s := range c.servers {
		if s != nil {
			u = append(u, s.ClientURL())
		}
	}
	return u
}

// streams are the JetStream streams of a store with this prefix.
func natsStreams(prefix string) []string {
	return []string{"KV_" + prefix + "_events", "KV_" + prefix + "_dedup", prefix + "_work", prefix + "_dead"}
}

// leads reports whether node i leads the meta group or any asset of prefix.
func (c *natsCluster) leads(i int, prefix string) bool {
	s := c.servers[i]
	if s.JetStreamIsLeader() || s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, prefix+"_work", "workers") {
		return true
	}
	for _, st := range natsStreams(prefix) {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, st) {
			return true
		}
	}
	return false
}

// streamLeader is the node leading the named stream.
func (c *natsCluster) streamLeader(stream string) int {
	c.tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range c.servers {
			if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.tb.Fatalf("stream %s has no leader", stream)
	return -1
}

// waitCurrent waits until every replica of the store's streams is current.
func waitCurrent(tb testing.TB, urls []string, prefix string, replicas int) {
	tb.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, name := range natsStreams(prefix) {
		for {
			st, err := js.Stream(context.Background(), name)
			if err == nil {
				info, err := st.Info(context.Background())
				if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == replicas-1 && allCurrent(info.Cluster.Replicas) {
					break
				}
			}
			if time.Now().After(deadline) {
				tb.Fatalf("stream %s: replicas not current", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

func TestNATSConformance(t *testing.T) {
	c := startNATSCluster(t, 3)
	var n atomic.Int32
	var open func(t *testing.T, clock *fakeClock, stream string) queue.Store
	open = func(t *testing.T, clock *fakeClock, stream string) queue.Store {
		s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{
			URLs:     c.urls(),
			Stream:   stream,
			Replicas: 3,
			Now:      clock.Now,
			// The clock jumps; tickets not due come back often to follow it.
			MaxDelay:  100 * time.Millisecond,
			LeaseWait: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		reopeners.Store(queue.Store(s), func(t *testing.T) queue.Store {
			_ = s.Close()
			return open(t, clock, stream)
		})
		return s
	}
	runConformance(t, func(t *testing.T, clock *fakeClock) queue.Store {
		return open(t, clock, fmt.Sprintf("conformance%d", n.Add(1)))
	}, false)

	t.Run("dedup across instances", func(t *testing.T) {
		ctx := context.Background()
		open := func() *queue.NATS {
			s, err := queue.OpenNATS(ctx, queue.NATSOptions{URLs: c.urls(), Stream: "shared", Replicas: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		a, b := open(), open()
		ev := func(id string) []*queue.Event {
			return []*queue.Event{{ID: id, Hook: "pets", Body: []byte(`{}`)}, {ID: id, Hook: "pets", Action: 1, Body: []byte(`{}`)}}
		}
		dedup := queue.EnqueueOptions{Dedup: time.Hour}
		if err := a.Enqueue(ctx, ev("first"), dedup); err != nil {
			t.Fatal(err)
		}
		if err := b.Enqueue(ctx, ev("first"), dedup); !errors.Is(err, queue.ErrDuplicate) {
			t.Fatalf("second instance accepted a duplicate: %v", err)
		}
		// Both instances get every id at the same moment: each is stored once.
		const ids = 40
		var accepted [ids]atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 2*ids)
		for i := range ids {
			for _, s := range []*queue.NATS{a, b} {
				wg.Go(func() {
					err := s.Enqueue(ctx, ev(fmt.Sprintf("race%d", i)), dedup)
					switch {
					case err == nil:
						accepted[i].Add(1)
					case !errors.Is(err, queue.ErrDuplicate):
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range ids {
			if got := accepted[i].Load(); got != 1 {
				t.Errorf("race%d accepted %d times, want once", i, got)
			}
		}
		// Both instances lease together: every record once.
		var mu sync.Mutex
		leased := map[string]int{}
		actions := map[string]int{}
		for _, s := range []*queue.NATS{a, b} {
			wg.Go(func() {
				for empty := 0; empty < 2; {
					evs, err := s.Lease(ctx, 7, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(evs) == 0 {
						empty++
					}
					mu.Lock()
					for _, ev := range evs {
						leased[ev.Key]++
						actions[ev.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(leased) != 2*(ids+1) {
			t.Fatalf("leased %d records, want %d", len(leased), 2*(ids+1))
		}
		for key, k := range leased {
			if k != 1 {
				t.Errorf("%s leased %d times", key, k)
			}
		}
		for id, k := range actions {
			if k != 2 {
				t.Errorf("%s: %d records leased, want its 2 actions", id, k)
			}
		}
	})
}

// enqueueEventually retries while the store is unavailable (a node just
// went away), failing after within.
func enqueueEventually(t *testing.T, s queue.Store, ev *queue.Event, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := s.Enqueue(context.Background(), []*queue.Event{ev}, queue.EnqueueOptions{Dedup: time.Hour})
		if err == nil {
			return
		}
		if !errors.Is(err, queue.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("enqueue %s: %v", ev.ID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaseAll leases until nothing more is due and acks what it got.
func leaseAll(t *testing.T, s queue.Store) map[string]int {
	t.Helper()
	return leaseAtLeast(t, s, 0)
}

// leaseAtLeast leases and acks until two leases in a row come back empty
// with at least want distinct ids leased, or 30 s have passed. After
// leader moves a work consumer can answer empty for a while before its
// new leader serves it; the ids still missing are then reported by the
// caller.
func leaseAtLeast(t *testing.T, s queue.Store, want int) map[string]int {
	t.Helper()
	ctx := context.Background()
	got := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for empty := 0; (empty < 2 || len(got) < want) && time.Now().Before(deadline); {
		evs, err := s.Lease(ctx, 50, time.Hour)
		if err != nil {
			if errors.Is(err, queue.ErrUnavailable) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			t.Fatal(err)
		}
		if len(evs) == 0 {
			empty++
			if len(got) < want {
				time.Sleep(100 * time.Millisecond)
			}
		} else {
			empty = 0
		}
		for _, ev := range evs {
			got[ev.ID]++
			if err := s.Ack(ctx, queue.LeaseOf(ev), queue.Attempt{At: time.Now(), Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return got
}

func expectLeased(t *testing.T, got map[string]int, prefix string, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if got[id] != 1 {
			t.Errorf("%s leased %d times, want once", id, got[id])
		}
	}
}

// openNATSEventually opens a store on a cluster that may still be
// forming: on a loaded machine the first stream creations can outlast a
// short Timeout. Opening is not what such a test is about; it fails only
// when the store cannot be opened within 30 s.
func openNATSEventually(t *testing.T, opts queue.NATSOptions) *queue.NATS {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := queue.OpenNATS(context.Background(), opts)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		t.Logf("opening the store: %v; again", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// A store opened while its cluster has no quorum (two of three nodes
// down, as when Caddy starts before the cluster is back) keeps trying
// within its setup bound, and opens once the nodes return.
func TestNATSOpenWhileClusterRecovers(t *testing.T) {
	c := startNATSCluster(t, 3)
	url := c.servers[0].ClientURL()
	c.stop(1)
	c.stop(2)
	opened := make(chan error, 1)
	began := time.Now()
	go func() {
		s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: []string{url}, Stream: "recovers", Replicas: 3, Timeout: time.Second})
		if err == nil {
			_ = s.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("the store opened (err %v) with no quorum in the cluster", err)
	case <-time.After(2 * time.Second):
	}
	c.start(1)
	c.start(2)
	if err := <-opened; err != nil {
		t.Fatalf("the store did not open after the cluster recovered: %v", err)
	}
	t.Logf("opened %v after the first try, the nodes back after 2 s", time.Since(began).Round(time.Millisecond))
}

func TestNATSNodeLoss(t *testing.T) {
	c := startNATSCluster(t, 3)
	const prefix = "loss"
	s := openNATSEventually(t, queue.NATSOptions{URLs: c.urls(), Stream: prefix, Replicas: 3, Timeout: 2 * time.Second, ReconnectWait: 50 * time.Millisecond})
	defer s.Close()
	ev := func(id string) *queue.Event {
		return &queue.Event{ID: id, Hook: "pets", Body: []byte(`{"id":"` + id + `"}`)}
	}
	enqueueAll := func(tag string, n int, first time.Duration) {
		t.Helper()
		for i := range n {
			within := time.Duration(0)
			if i == 0 {
				within = first
			}
			enqueueEventually(t, s, ev(fmt.Sprintf("%s-%d", tag, i)), within)
		}
	}
	enqueueAll("before", 10, 0)

	t.Run("a node that leads nothing goes down", func(t *testing.T) {
		x := -1
		deadline := time.Now().Add(15 * time.Second)
		for x < 0 && time.Now().Before(deadline) {
			for i := range c.servers {
				if c.servers[i].JetStreamIsLeader() {
					continue
				}
				for _, st := range natsStreams(prefix) {
					_ = c.servers[i].JetStreamStepdownStream(server.DEFAULT_GLOBAL_ACCOUNT, st)
				}
				_ = c.servers[i].JetStreamStepdownConsumer(server.DEFAULT_GLOBAL_ACCOUNT, prefix+"_work", "workers")
			}
			time.Sleep(200 * time.Millisecond)
			for i := range c.servers {
				if !c.leads(i, prefix) {
					x = i
					break
				}
			}
		}
		if x < 0 {
			t.Fatal("every node leads something")
		}
		c.stop(x)
		// The first write may meet a connection to the stopped node; the
		// client reconnects to another. No election is needed.
		enqueueAll("follower-down", 10, 5*time.Second)
		got := leaseAll(t, s)
		expectLeased(t, got, "before", 10)
		expectLeased(t, got, "follower-down", 10)
		if len(got) != 20 {
			t.Errorf("leased %d events, want 20", len(got))
		}
		c.start(x)
		waitCurrent(t, c.urls(), prefix, 3)
	})

	t.Run("the leader goes down", func(t *testing.T) {
		enqueueAll("before-leader", 10, 0)
		leader := c.streamLeader(prefix + "_work")
		c.stop(leader)
		// The two others elect a new leader, then accept writes again.
		enqueueAll("leader-down", 10, 25*time.Second)
		got := leaseAll(t, s)
		expectLeased(t, got, "before-leader", 10)
		expectLeased(t, got, "leader-down", 10)
		if len(got) != 20 {
			t.Errorf("leased %d events, want 20", len(got))
		}
	})

	t.Run("every node down", func(t *testing.T) {
		c.stopAll()
		start := time.Now()
		err := s.Enqueue(context.Background(), []*queue.Event{ev("nowhere")}, queue.EnqueueOptions{Dedup: time.Hour})
		if !errors.Is(err, queue.ErrUnavailable) {
			t.Fatalf("enqueue without a cluster: %v", err)
		}
		// the store's own 2s timeout ends the wait; without it the call
		// would hang for good, so the margin is wide (not a speed check)
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("enqueue took %v to fail (timeout 2s)", d)
		}
		start = time.Now()
		if _, err := s.Lease(context.Background(), 10, time.Minute); !errors.Is(err, queue.ErrUnavailable) {
			t.Fatalf("lease without a cluster: %v", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("lease took %v to fail (timeout 2s)", d)
		}
	})
}

// TestNATSRealClock checks the production path: real JetStream delays
// decide when a retried event is due again, and a dead event is copied to
// the dead-letter stream.
func TestNATSRealClock(t *testing.T) {
	c := startNATSCluster(t, 3)
	ctx := context.Background()
	s, err := queue.OpenNATS(ctx, queue.NATSOptions{URLs: c.urls(), Stream: "real", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enqueue(ctx, []*queue.Event{{ID: "r1", Hook: "pets", Body: []byte(`{"a":1}`)}}, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Lease(ctx, 1, time.Minute)
	if err != nil || len(evs) != 1 {
		t.Fatalf("lease: %v %d", err, len(evs))
	}
	retried := time.Now()
	if err := s.Retry(ctx, queue.LeaseOf(evs[0]), queue.Attempt{At: retried, Status: 502}, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	evs = nil
	for len(evs) == 0 && time.Since(retried) < 5*time.Second {
		if evs, err = s.Lease(ctx, 1, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if len(evs) != 1 {
		t.Fatal("retried event never due again")
	}
	if waited := time.Since(retried); waited < 1500*time.Millisecond {
		t.Fatalf("retried event due after %v, before its delay", waited)
	}
	if err := s.Dead(ctx, queue.LeaseOf(evs[0]), queue.Attempt{At: time.Now(), Error: "connection refused"}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.Join(c.urls(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "real_dead")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "real.dead.>")
	if err != nil {
		t.Fatal(err)
	}
	var dead queue.Event
	if err := json.Unmarshal(m.Data, &dead); err != nil || dead.ID != "r1" || dead.Status != queue.StatusDead || len(dead.Attempts) != 2 || string(dead.Body) != `{"a":1}` || dead.Key != evs[0].Key || !dead.DueAt.IsZero() {
		t.Fatalf("dead letter: %v %+v", err, dead)
	}
}

func BenchmarkNATSEnqueue(b *testing.B) {
	c := startNATSCluster(b, 3)
	var k atomic.Int32
	benchEnqueue(b, func(b *testing.B) queue.Store {
		s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: c.urls(), Stream: fmt.Sprintf("bench%d", k.Add(1)), Replicas: 3})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestNATSLeaderChangesUnderLoad steps down the leaders of the streams an
// accept writes to (records, tickets, dedup marks) every 300ms while
// senders enqueue. A leader that steps down hands over at once, but a
// write in flight to it gets no answer (without a second try, some
// Enqueues fail here with a deadline exceeded); that write is tried once
// more within the accept's bound, so every Enqueue succeeds, and the
// second try never stores an event twice: every event is leased exactly
// once.
func TestNATSLeaderChangesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node JetStream cluster under load")
	}
	c := startNATSCluster(t, 3)
	const prefix = "moves"
	// The bound on an accept is generous here: what is tested is that a
	// leader change is ridden out by the retry, not how fast a loaded
	// machine (-race, other suites) elects; without the retry a write
	// refused as leaderless fails at once.
	s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: c.urls(), Stream: prefix, Replicas: 3, AcceptTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitCurrent(t, c.urls(), prefix, 3)

	var stop atomic.Bool
	var mu sync.Mutex
	accepted := map[string]bool{}
	failed := map[string]bool{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("m-%d-%d", g, i)
				evs := []*queue.Event{{ID: id, Hook: "pets", Body: []byte(`{}`)}}
				err := s.Enqueue(context.Background(), evs, queue.EnqueueOptions{Dedup: time.Hour})
				mu.Lock()
				if err == nil {
					accepted[id] = true
				} else {
					failed[id] = true
					t.Errorf("enqueue %s during a leader change: %v", id, err)
				}
				mu.Unlock()
			}
		})
	}
	streams := []string{"KV_" + prefix + "_events", prefix + "_work", "KV_" + prefix + "_dedup"}
	moved := 0
	for range 6 {
		time.Sleep(300 * time.Millisecond)
		for _, st := range streams {
			leader := c.streamLeader(st)
			if err := c.servers[leader].JetStreamStepdownStream(server.DEFAULT_GLOBAL_ACCOUNT, st); err == nil {
				moved++
			}
		}
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	if moved == 0 {
		t.Fatal("no stream leader stepped down")
	}
	if len(accepted) == 0 {
		t.Fatal("nothing accepted")
	}
	got := leaseAtLeast(t, s, len(accepted))
	for id := range accepted {
		if got[id] != 1 {
			t.Errorf("accepted %s leased %d times, want once", id, got[id])
		}
	}
	for id := range got {
		if !accepted[id] && !failed[id] {
			t.Errorf("%s leased but never enqueued", id)
		}
		if got[id] > 1 {
			t.Errorf("%s leased %d times, want once", id, got[id])
		}
	}
	t.Logf("%d leader moves: %d accepts, %d failed", moved, len(accepted), len(failed))
}
