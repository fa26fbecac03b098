package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/caddy-webhooks/gateway/internal/natstest"
	"github.com/caddy-webhooks/gateway/queue"
)

// resultsPair opens two handles on one fresh store: for NATS two instances
// (two connections, to different servers), for Pebble the one instance.
type resultsPair func(t *testing.T, clock *fakeClock) (a, b queue.Results)

// binaryBody is n bytes of every value (all 256 first, then seeded noise),
// so an encoding that mangles a byte or stops at a NUL is caught.
func binaryBody(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := mathrand.New(mathrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		if i < 256 {
			b[i] = byte(i)
		} else {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

func sameResult(t *testing.T, what string, got, want queue.Result) {
	t.Helper()
	if got.Hook != want.Hook || got.EventID != want.EventID || got.Status != want.Status ||
		got.ContentType != want.ContentType || got.Error != want.Error ||
		!got.StoredAt.Equal(want.StoredAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("%s: got %+v, want %+v", what, withoutBody(got), withoutBody(want))
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("%s: body of %d bytes differs from the %d stored", what, len(got.Body), len(want.Body))
	}
}

func withoutBody(r queue.Result) queue.Result {
	r.Body = nil
	return r
}

func mustPutResult(t *testing.T, s queue.Results, secret string, r queue.Result) {
	t.Helper()
	if err := s.PutResult(context.Background(), secret, r); err != nil {
		t.Fatalf("put %s: %v", secret, err)
	}
}

func mustGetResult(t *testing.T, s queue.Results, secret string, want queue.Result) {
	t.Helper()
	got, err := s.GetResult(context.Background(), secret)
	if err != nil {
		t.Fatalf("get %s: %v", secret, err)
	}
	sameResult(t, "get "+secret, got, want)
}

func resultNotFound(t *testing.T, s queue.Results, secret, what string) {
	t.Helper()
	got, err := s.GetResult(context.Background(), secret)
	if !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("%s: got %+v %v, want ErrNotFound", what, withoutBody(got), err)
	}
}

func mustPurge(t *testing.T, s queue.Results, now time.Time, want int) {
	t.Helper()
	n, err := s.PurgeResults(context.Background(), now)
	if err != nil || n != want {
		t.Fatalf("purge at %s: %d %v, want %d", now.Format(time.RFC3339), n, err, want)
	}
}

// runResultsConformance is the behaviour every Results must have.
func runResultsConformance(t *testing.T, open resultsPair) {
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	result := func(body []byte, retain time.Duration) queue.Result {
		return queue.Result{
			Hook: "backup", EventID: "evt-1", Status: 200, ContentType: "application/octet-stream",
			Body: body, StoredAt: start, ExpiresAt: start.Add(retain),
		}
	}

	t.Run("round trip", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		for name, r := range map[string]queue.Result{
			"small binary": result(binaryBody(1000, 1), time.Hour),
			// over the NATS inline size and over one message
			"large binary": result(binaryBody(3<<20+17, 2), time.Hour),
			"empty":        result(nil, time.Hour),
			"failure": {
				Hook: "backup", EventID: "evt-2", Status: 504, Error: "upstream: context deadline exceeded",
				StoredAt: start.In(time.FixedZone("CET", 3600)), ExpiresAt: start.Add(24 * time.Hour),
			},
		} {
			secret := "s-" + strings.ReplaceAll(name, " ", "-")
			mustPutResult(t, a, secret, r)
			// seen at once through the other instance
			mustGetResult(t, b, secret, r)
			mustGetResult(t, a, secret, r)
		}
		// a zero StoredAt is the store's time
		r := result([]byte("x"), time.Hour)
		r.StoredAt = time.Time{}
		clock.Advance(time.Second)
		mustPutResult(t, a, "stamped", r)
		got, err := b.GetResult(ctx, "stamped")
		if err != nil || !got.StoredAt.Equal(start.Add(time.Second)) {
			t.Fatalf("stamped: %+v %v", withoutBody(got), err)
		}
		// a secret of 128 bytes is the longest, and only it finds its result
		long := strings.Repeat("k", queue.MaxResultSecret)
		mustPutResult(t, a, long, result([]byte("long"), time.Hour))
		mustGetResult(t, b, long, result([]byte("long"), time.Hour))
		resultNotFound(t, b, long[1:], "a prefix of the secret")
		resultNotFound(t, b, "S-small-binary", "the secret in another case")
	})

	t.Run("replace", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		small := result([]byte(`{"state":"running"}`), time.Hour)
		small.ContentType = "application/json"
		large := result(binaryBody(2<<20, 3), 2*time.Hour)
		larger := result(binaryBody(5<<20, 4), 3*time.Hour)
		larger.Status = 500
		steps := []queue.Result{small, large, larger, large, small, result(nil, 4*time.Hour)}
		for i, r := range steps {
			s := []queue.Results{a, b}[i%2]
			mustPutResult(t, s, "same", r)
			mustGetResult(t, a, "same", r)
			mustGetResult(t, b, "same", r)
		}
		// the replaced results' expiries do not purge the last one
		mustPurge(t, a, start.Add(3*time.Hour), 0)
		clock.Advance(3 * time.Hour)
		mustGetResult(t, b, "same", steps[len(steps)-1])
		mustPurge(t, b, start.Add(4*time.Hour), 1)
		resultNotFound(t, a, "same", "after its purge")
	})

	t.Run("unknown and expired", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		resultNotFound(t, a, "never-stored", "unknown")
		small := result([]byte("done"), time.Hour)
		large := result(binaryBody(1<<20+5, 5), time.Hour)
		mustPutResult(t, a, "small", small)
		mustPutResult(t, a, "large", large)
		clock.Advance(time.Hour - time.Nanosecond)
		mustGetResult(t, b, "small", small)
		mustGetResult(t, b, "large", large)
		// expired at ExpiresAt, although no purge has run
		clock.Advance(time.Nanosecond)
		for _, s := range []queue.Results{a, b} {
			resultNotFound(t, s, "small", "expired at ExpiresAt")
			resultNotFound(t, s, "large", "large, expired at ExpiresAt")
		}
		clock.Advance(time.Hour)
		resultNotFound(t, b, "small", "expired an hour ago")
		// a result stored already expired is never returned
		mustPutResult(t, a, "born-expired", result([]byte("late"), -time.Minute))
		resultNotFound(t, b, "born-expired", "stored expired")
	})

	t.Run("purge", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		for i, retain := range []time.Duration{time.Hour, 2 * time.Hour, 2 * time.Hour, 3 * time.Hour} {
			body := []byte(fmt.Sprint(i))
			if i == 1 {
				body = binaryBody(2<<20, 6) // chunked on NATS
			}
			mustPutResult(t, []queue.Results{a, b}[i%2], fmt.Sprint("p", i), result(body, retain))
		}
		mustPurge(t, a, start, 0)
		mustPurge(t, a, start.Add(time.Hour-time.Nanosecond), 0)
		mustPurge(t, a, start.Add(time.Hour), 1) // ExpiresAt not after now
		mustPurge(t, b, start.Add(time.Hour), 0)
		mustPurge(t, b, start.Add(150*time.Minute), 2)
		// what a purge leaves is still there
		mustGetResult(t, a, "p3", result([]byte("3"), 3*time.Hour))
		// a result stored with an expiry before the last purge is purged
		mustPutResult(t, b, "old", result([]byte("old"), 30*time.Minute))
		mustPurge(t, a, start.Add(150*time.Minute), 1)
		// gone, not only hidden: the store's clock is still at start, when
		// they had not expired
		for _, s := range []string{"p0", "p1", "p2", "old"} {
			resultNotFound(t, b, s, "purged "+s)
		}
		mustGetResult(t, b, "p3", result([]byte("3"), 3*time.Hour))
		mustPurge(t, b, start.Add(100*time.Hour), 1)
		mustPurge(t, a, start.Add(100*time.Hour), 0)
		resultNotFound(t, a, "p3", "purged p3")
	})

	t.Run("purge right after a put", func(t *testing.T) {
		// a purge sees every put that returned before it began, through
		// either instance: on NATS the scan may be served by a replica
		// that has not applied the last put yet
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		// many rounds: a lagging replica is met now and then (on an idle
		// machine about once in 200 rounds, far more often under load)
		for i := range 150 {
			s, p := []queue.Results{a, b}[i%2], []queue.Results{a, b}[(i+1)%2]
			secret := fmt.Sprint("fresh", i)
			// first stored for longer, then replaced: the purge must see
			// the replacement, not only that the key exists
			mustPutResult(t, p, secret, result([]byte("first"), 2*time.Hour))
			mustPutResult(t, s, secret, result([]byte(fmt.Sprint(i)), time.Hour))
			mustPurge(t, p, start.Add(time.Hour), 1)
			resultNotFound(t, s, secret, "purged "+secret)
		}
	})

	t.Run("puts racing with purges", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		purgeAt := start.Add(time.Hour)
		secret := func(w, i int) string { return fmt.Sprint("race", w, "-", i) }
		for w := range 4 {
			for i := range 20 {
				mustPutResult(t, a, secret(w, i), result([]byte(fmt.Sprint(w, i)), time.Hour))
			}
		}
		// every result expired at purgeAt; while purges run, the odd ones
		// are replaced with ones that have not
		var wg sync.WaitGroup
		var purged atomic.Int64
		errs := make(chan error, 16)
		for w := range 4 {
			s := []queue.Results{a, b}[w%2]
			wg.Go(func() {
				for i := 1; i < 20; i += 2 {
					if err := s.PutResult(ctx, secret(w, i), result([]byte(fmt.Sprint("new", w, i)), 2*time.Hour)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for w := range 2 {
			s := []queue.Results{a, b}[w]
			wg.Go(func() {
				for range 10 {
					n, err := s.PurgeResults(ctx, purgeAt)
					if err != nil {
						errs <- err
						return
					}
					purged.Add(int64(n))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		n, err := a.PurgeResults(ctx, purgeAt)
		if err != nil {
			t.Fatal(err)
		}
		// the 40 even ones, and the odd ones purged before their
		// replacement: each counted once, whichever purge removed it
		if total := purged.Load() + int64(n); total < 40 || total > 80 {
			t.Fatalf("purged %d results, want 40 to 80", total)
		}
		for w := range 4 {
			for i := range 20 {
				if i%2 == 0 {
					resultNotFound(t, b, secret(w, i), "purged "+secret(w, i))
				} else {
					mustGetResult(t, b, secret(w, i), result([]byte(fmt.Sprint("new", w, i)), 2*time.Hour))
				}
			}
		}
		mustPurge(t, b, start.Add(2*time.Hour), 40)
	})

	t.Run("refused", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		ok := result([]byte("ok"), time.Hour)
		for _, secret := range []string{"", strings.Repeat("k", queue.MaxResultSecret+1)} {
			err := a.PutResult(ctx, secret, ok)
			if !errors.Is(err, queue.ErrResultSecret) || !strings.Contains(err.Error(), "1 to 128 bytes") {
				t.Fatalf("put with a secret of %d bytes: %v", len(secret), err)
			}
			_, err = b.GetResult(ctx, secret)
			if !errors.Is(err, queue.ErrNotFound) || !errors.Is(err, queue.ErrResultSecret) {
				t.Fatalf("get with a secret of %d bytes: %v", len(secret), err)
			}
		}
		long := strings.Repeat("x", queue.MaxResultField+1)
		for name, r := range map[string]queue.Result{
			"body over the limit": result(make([]byte, queue.MaxResultBody+1), time.Hour),
			"no status":           {Hook: "h", ExpiresAt: start.Add(time.Hour)},
			"status 1000":         {Hook: "h", Status: 1000, ExpiresAt: start.Add(time.Hour)},
			"no expiry":           {Hook: "h", Status: 200},
			"long hook":           {Hook: long, Status: 200, ExpiresAt: start.Add(time.Hour)},
			"long error":          {Hook: "h", Status: 502, Error: long, ExpiresAt: start.Add(time.Hour)},
		} {
			if err := a.PutResult(ctx, "refused", r); err == nil {
				t.Errorf("%s: accepted", name)
			}
			resultNotFound(t, b, "refused", name+": stored")
		}
		if err := a.PutResult(ctx, "refused", result(make([]byte, queue.MaxResultBody+1), time.Hour)); err == nil ||
			!strings.Contains(err.Error(), "over the limit") {
			t.Fatalf("body over the limit: %v", err)
		}
		// the limit itself is accepted
		atLimit := result(binaryBody(queue.MaxResultBody, 7), time.Hour)
		mustPutResult(t, a, "at-limit", atLimit)
		mustGetResult(t, b, "at-limit", atLimit)
	})
}

func TestPebbleResults(t *testing.T) {
	runResultsConformance(t, func(t *testing.T, clock *fakeClock) (queue.Results, queue.Results) {
		s := openPebble(t, clock).(*queue.Pebble)
		return s, s
	})
}

func TestNATSResults(t *testing.T) {
	c := startNATSCluster(t, 3)
	urls := c.urls()
	var n int
	runResultsConformance(t, func(t *testing.T, clock *fakeClock) (queue.Results, queue.Results) {
		n++
		stream := fmt.Sprintf("results%d", n)
		open := func(url string) *queue.NATS {
			s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: []string{url}, Stream: stream, Replicas: 3, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return open(urls[0]), open(urls[2])
	})
}

// dirHolds reports which files under dir contain needle.
func dirHolds(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// persisted are results a restart test stores and then finds again.
type persisted struct {
	secret string
	r      queue.Result
}

func persistedResults(start time.Time) []persisted {
	// each result carries a marker that is found in the store's files,
	// so that a scan for the secrets that finds nothing proves something
	mk := func(i int, body []byte) persisted {
		return persisted{
			secret: fmt.Sprintf("c0ffee%026d", i), // a 32-character id like the gateway's
			r: queue.Result{
				Hook: fmt.Sprintf("marker-hook-%d", i), EventID: "evt", Status: 201, ContentType: "text/plain",
				Body: body, StoredAt: start, ExpiresAt: start.Add(time.Duration(i+1) * time.Hour),
			},
		}
	}
	return []persisted{mk(0, []byte("first")), mk(1, binaryBody(3<<20, 8)), mk(2, nil)}
}

// checkNoSecrets fails if a secret is in a file under dir, and checks that
// the scan sees what was stored (the hook names).
func checkNoSecrets(t *testing.T, dir string, rs []persisted) {
	t.Helper()
	for _, p := range rs {
		if files := dirHolds(t, dir, []byte(p.secret)); len(files) > 0 {
			t.Errorf("secret %s is in %v", p.secret, files)
		}
		if files := dirHolds(t, dir, []byte(p.r.Hook)); len(files) == 0 {
			t.Errorf("stored hook name %s is in no file of %s: the scan proves nothing", p.r.Hook, dir)
		}
	}
}

func TestPebbleResultsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	rs := persistedResults(clock.now)
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rs {
		mustPutResult(t, s, p.secret, p.r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, dir, rs)
	s, err = queue.OpenPebble(dir, queue.PebbleOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, p := range rs {
		mustGetResult(t, s, p.secret, p.r)
	}
	// results are not events: the counts do not show them
	st, err := s.Stats(ctx)
	if err != nil || len(st.Counts) != 0 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	// the expiry index survives too: a purge after the reopen finds them
	mustPurge(t, s, clock.now.Add(2*time.Hour), 2)
	mustGetResult(t, s, rs[2].secret, rs[2].r)
}

// natsNode is one JetStream server (not clustered) run in this process,
// which a test can stop and start again on its store directory.
type natsNode struct {
	t   *testing.T
	dir string
	s   *server.Server
}

func startNATSNode(t *testing.T) *natsNode {
	n := &natsNode{t: t, dir: t.TempDir()}
	t.Cleanup(n.stop) // before the directory's removal, registered earlier
	n.start()
	return n
}

func (n *natsNode) start() {
	n.t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: n.dir, JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30,
		SyncAlways: true,
	})
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		n.t.Fatal("nats-server did not start")
	}
	n.s = s
}

func (n *natsNode) stop() {
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

func TestNATSResultsSurviveRestart(t *testing.T) {
	node := startNATSNode(t)
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	open := func() *queue.NATS {
		s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: []string{node.s.ClientURL()}, Stream: "restart", Replicas: 1, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rs := persistedResults(clock.now)
	s := open()
	for _, p := range rs {
		mustPutResult(t, s, p.secret, p.r)
	}
	_ = s.Close()
	node.stop()
	checkNoSecrets(t, node.dir, rs)
	node.start()
	s = open()
	defer func() { _ = s.Close() }()
	for _, p := range rs {
		mustGetResult(t, s, p.secret, p.r)
	}
	mustPurge(t, s, clock.now.Add(2*time.Hour), 2)
	mustGetResult(t, s, rs[2].secret, rs[2].r)
}

// TestNATSResultChunksRemoved checks, in the bucket itself, that a
// replaced or purged body leaves no chunk behind, and that chunks are what
// carries a body over one message.
func TestNATSResultChunksRemoved(t *testing.T) {
	ctx := context.Background()
	url := natstest.Start(t).ClientURL()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, err := queue.OpenNATS(ctx, queue.NATSOptions{URLs: []string{url}, Stream: "chunks", Replicas: 1, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "chunks_results")
	if err != nil {
		t.Fatal(err)
	}
	keys := func(filter string) int {
		t.Helper()
		l, err := kv.ListKeysFiltered(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range l.Keys() {
			n++
		}
		return n
	}
	r := queue.Result{Hook: "h", Status: 200, Body: binaryBody(3<<20, 9), ExpiresAt: clock.now.Add(time.Hour)}
	mustPutResult(t, s, "a", r)
	if got, least := keys("c.>"), int(int64(len(r.Body))/nc.MaxPayload())+1; got < least {
		t.Fatalf("%d chunks for a body of %d bytes, server max_payload %d", got, len(r.Body), nc.MaxPayload())
	}
	// replaced by a large body, then by a small one: no chunk of the
	// earlier bodies is left
	r2 := r
	r2.Body = binaryBody(2<<20, 10)
	mustPutResult(t, s, "a", r2)
	before := keys("c.>")
	r3 := r
	r3.Body = []byte("small")
	mustPutResult(t, s, "a", r3)
	if n := keys("c.>"); n != 0 || before == 0 {
		t.Fatalf("chunks: %d with the 2 MiB body, %d after its replacement by an inline one", before, n)
	}
	mustPutResult(t, s, "b", r)
	mustPurge(t, s, clock.now.Add(time.Hour), 2)
	if n, m := keys("c.>"), keys("m.>"); n != 0 || m != 0 {
		t.Fatalf("after the purge: %d chunks, %d results", n, m)
	}
}

// BenchmarkPebblePutResult measures synced puts of 4 KiB results, one at
// a time and from 16 goroutines per CPU.
func BenchmarkPebblePutResult(b *testing.B) {
	r := queue.Result{Hook: "h", Status: 200, Body: binaryBody(4096, 11), ExpiresAt: time.Now().Add(time.Hour)}
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprint("parallelism=", par), func(b *testing.B) {
			s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			var n atomic.Int64
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.PutResult(context.Background(), fmt.Sprint("secret-", n.Add(1)), r); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPebbleGetResult measures a read of one of 1000 4 KiB results.
func BenchmarkPebbleGetResult(b *testing.B) {
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	r := queue.Result{Hook: "h", Status: 200, Body: binaryBody(4096, 12), ExpiresAt: time.Now().Add(time.Hour)}
	for i := range 1000 {
		if err := s.PutResult(context.Background(), fmt.Sprint("secret-", i), r); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetResult(context.Background(), fmt.Sprint("secret-", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNATSResult measures a put then a get of a 4 KiB (inline) and a
// 2 MiB (chunked) result on a 3-node cluster with 3 replicas.
func BenchmarkNATSResult(b *testing.B) {
	c := startNATSCluster(b, 3)
	s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: c.urls(), Stream: "benchresults", Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, size := range []int{4 << 10, 2 << 20} {
		b.Run(fmt.Sprint("body=", size), func(b *testing.B) {
			r := queue.Result{Hook: "h", Status: 200, Body: binaryBody(size, 13), ExpiresAt: time.Now().Add(time.Hour)}
			for i := 0; b.Loop(); i++ {
				secret := fmt.Sprint("secret-", size, "-", i)
				if err := s.PutResult(context.Background(), secret, r); err != nil {
					b.Fatal(err)
				}
				if _, err := s.GetResult(context.Background(), secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
