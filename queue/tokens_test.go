package queue_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/queue"
	"github.com/nats-io/nats.go"
)

var (
	uuidForm  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tokenForm = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// hookPair opens two handles on one fresh store: for NATS two instances
// (two connections, to different servers), for Pebble the one instance.
type hookPair func(t *testing.T, clock *fakeClock) (a, b queue.HookTokens)

// runHookTokensConformance is the behaviour every HookTokens must have.
func runHookTokensConformance(t *testing.T, open hookPair) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

	mustPut := func(t *testing.T, s queue.HookTokens, h queue.IssuedHook, keep bool) queue.IssuedHook {
		t.Helper()
		got, err := s.PutHook(ctx, h, keep)
		if err != nil {
			t.Fatalf("put %+v: %v", h, err)
		}
		return got
	}
	notFound := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("%s: got %v, want ErrNotFound", what, err)
		}
	}

	t.Run("create, upsert and tsField", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		h := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push", TSField: "commits[0].timestamp"}, false)
		if !uuidForm.MatchString(h.APIToken) || !tokenForm.MatchString(h.Token) {
			t.Fatalf("tokens %q %q: want a random UUID and 40 hex digits", h.APIToken, h.Token)
		}
		if !h.CreatedAt.Equal(start.Truncate(time.Millisecond)) || h.TSField != "commits[0].timestamp" || h.Tenant != "acme" {
			t.Fatalf("created %+v", h)
		}
		clock.Advance(time.Hour)
		// tsField omitted (kept): tokens, createdAt and tsField stay
		kept := mustPut(t, b, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push", TSField: "ignored"}, true)
		if kept != h {
			t.Fatalf("upsert keeping tsField changed the hook:\n%+v\n%+v", kept, h)
		}
		changed := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push", TSField: "head_commit.timestamp"}, false)
		if changed.APIToken != h.APIToken || changed.Token != h.Token || !changed.CreatedAt.Equal(h.CreatedAt) || changed.TSField != "head_commit.timestamp" {
			t.Fatalf("upsert with a new tsField: %+v", changed)
		}
		cleared := mustPut(t, b, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push"}, false)
		if cleared.TSField != "" || cleared.Token != h.Token {
			t.Fatalf("tsField \"\" did not clear: %+v", cleared)
		}
		got, err := a.HookByTokens(ctx, "gh", h.APIToken, h.Token)
		if err != nil || got != cleared {
			t.Fatalf("lookup after upserts: %+v %v, want %+v", got, err, cleared)
		}
		// another event of the same datasource is another hook
		other := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "release"}, false)
		if other.APIToken == h.APIToken || other.Token == h.Token {
			t.Fatal("two hooks share tokens")
		}
		// tokens given for a new hook are used
		given := mustPut(t, b, queue.IssuedHook{
			Issuer: "gh", Tenant: "acme", Datasource: "dockerhub", Event: "push",
			APIToken: "0b6f5a6e-6f5e-4f57-9c43-7a0b8f1e2d3c", Token: strings.Repeat("ab", 20),
		}, false)
		if given.APIToken != "0b6f5a6e-6f5e-4f57-9c43-7a0b8f1e2d3c" || given.Token != strings.Repeat("ab", 20) {
			t.Fatalf("given tokens not used: %+v", given)
		}
	})

	t.Run("lookup by tokens", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		h := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push"}, false)
		// seen at once by the other instance
		got, err := b.HookByTokens(ctx, "gh", h.APIToken, h.Token)
		if err != nil || got != h {
			t.Fatalf("other instance: %+v %v", got, err)
		}
		last := h.Token[len(h.Token)-1]
		flipped := h.Token[:len(h.Token)-1] + string("10"[btoi(last == '1')])
		for name, args := range map[string][3]string{
			"wrong token":        {"gh", h.APIToken, flipped},
			"token prefix":       {"gh", h.APIToken, h.Token[:39]},
			"token extended":     {"gh", h.APIToken, h.Token + "0"},
			"empty token":        {"gh", h.APIToken, ""},
			"tokens swapped":     {"gh", h.Token, h.APIToken},
			"other issuer":       {"gl", h.APIToken, h.Token},
			"empty issuer":       {"", h.APIToken, h.Token},
			"upper-case api":     {"gh", strings.ToUpper(h.APIToken), h.Token},
			"long api token":     {"gh", strings.Repeat("a", 10000), h.Token},
			"api token wildcard": {"gh", "*", h.Token},
			"api token subject":  {"gh", h.APIToken + ".>", h.Token},
		} {
			_, err := b.HookByTokens(ctx, args[0], args[1], args[2])
			notFound(t, name, err)
		}
	})

	t.Run("tenants are isolated", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		acme := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push"}, false)
		acme2 := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "circleci", Event: "workflow"}, false)
		globex := mustPut(t, b, queue.IssuedHook{Issuer: "gh", Tenant: "globex", Datasource: "github", Event: "push"}, false)
		// same tenant name under another issuer: another token set
		otherSet := mustPut(t, b, queue.IssuedHook{Issuer: "gl", Tenant: "acme", Datasource: "github", Event: "push"}, false)
		// length prefixes: ("a", "bc") and ("ab", "c") are different hooks
		ab := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "a", Datasource: "bc", Event: "e"}, false)
		abc := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "ab", Datasource: "c", Event: "e"}, false)
		if ab.Token == abc.Token {
			t.Fatal("length prefixes: two hooks merged")
		}

		list, err := b.Hooks(ctx, "gh", "acme")
		if err != nil || len(list) != 2 || list[0] != acme2 || list[1] != acme {
			t.Fatalf("acme's hooks (by datasource, event): %+v %v", list, err)
		}
		for _, c := range []struct{ issuer, tenant string }{{"gh", "nobody"}, {"gh", ""}, {"", "acme"}, {"gh", "acm"}, {"gh", "*"}, {"gh", ">"}} {
			list, err := a.Hooks(ctx, c.issuer, c.tenant)
			if err != nil || list == nil || len(list) != 0 {
				t.Fatalf("hooks of %q/%q: %+v %v, want empty", c.issuer, c.tenant, list, err)
			}
		}
		if list, err := a.Hooks(ctx, "gl", "acme"); err != nil || len(list) != 1 || list[0] != otherSet {
			t.Fatalf("issuer gl: %+v %v", list, err)
		}
		if list, err := a.Hooks(ctx, "gh", "a"); err != nil || len(list) != 1 || list[0] != ab {
			t.Fatalf("tenant a: %+v %v", list, err)
		}

		got, err := b.HookByToken(ctx, "gh", "acme", acme.Token)
		if err != nil || got != acme {
			t.Fatalf("own hook by token: %+v %v", got, err)
		}
		_, err = b.HookByToken(ctx, "gh", "acme", globex.Token)
		notFound(t, "another tenant's token", err)
		_, err = b.HookByToken(ctx, "gh", "acme", otherSet.Token)
		notFound(t, "another issuer's token", err)
		_, err = b.HookByToken(ctx, "gh", "acme", "")
		notFound(t, "empty token", err)
		notFound(t, "delete another tenant's hook", a.DeleteHook(ctx, "gh", "acme", globex.Token))
		if _, err := b.HookByTokens(ctx, "gh", globex.APIToken, globex.Token); err != nil {
			t.Fatalf("globex's hook after acme tried to delete it: %v", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		h := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push", TSField: "x"}, false)
		keep := mustPut(t, a, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "release"}, false)
		if err := b.DeleteHook(ctx, "gh", "acme", h.Token); err != nil {
			t.Fatal(err)
		}
		// gone at once, on both instances
		for i, s := range []queue.HookTokens{a, b} {
			_, err := s.HookByTokens(ctx, "gh", h.APIToken, h.Token)
			notFound(t, fmt.Sprintf("instance %d: deleted hook's URL", i), err)
			_, err = s.HookByToken(ctx, "gh", "acme", h.Token)
			notFound(t, fmt.Sprintf("instance %d: deleted hook by token", i), err)
		}
		notFound(t, "second delete", a.DeleteHook(ctx, "gh", "acme", h.Token))
		if list, err := a.Hooks(ctx, "gh", "acme"); err != nil || len(list) != 1 || list[0] != keep {
			t.Fatalf("after delete: %+v %v", list, err)
		}
		// created again: new tokens, new time; the old URL stays dead
		clock.Advance(time.Minute)
		again := mustPut(t, b, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push"}, true)
		if again.Token == h.Token || again.APIToken == h.APIToken || !again.CreatedAt.After(h.CreatedAt) || again.TSField != "" {
			t.Fatalf("re-created: %+v (was %+v)", again, h)
		}
		_, err := a.HookByTokens(ctx, "gh", h.APIToken, h.Token)
		notFound(t, "old URL after re-creation", err)
		if _, err := a.HookByTokens(ctx, "gh", again.APIToken, again.Token); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("concurrent upserts make one hook", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, b := open(t, clock)
		var wg sync.WaitGroup
		got := make([]queue.IssuedHook, 8)
		errs := make([]error, len(got))
		for i := range got {
			s := []queue.HookTokens{a, b}[i%2]
			wg.Go(func() {
				// half keep the tsField, half write their own: both race
				h := queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push", TSField: fmt.Sprintf("ts%d", i)}
				got[i], errs[i] = s.PutHook(ctx, h, i%4 < 2)
			})
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i].Token != got[0].Token || got[i].APIToken != got[0].APIToken {
				t.Fatalf("upsert %d: %+v %v; first %+v", i, got[i], errs[i], got[0])
			}
		}
		list, err := a.Hooks(ctx, "gh", "acme")
		if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].TSField, "ts") {
			t.Fatalf("hooks: %+v %v", list, err)
		}
	})

	t.Run("bad hooks are refused", func(t *testing.T) {
		clock := &fakeClock{now: start}
		a, _ := open(t, clock)
		long := strings.Repeat("x", queue.MaxHookField+1)
		for name, h := range map[string]queue.IssuedHook{
			"no issuer":     {Tenant: "t", Datasource: "d", Event: "e"},
			"no tenant":     {Issuer: "i", Datasource: "d", Event: "e"},
			"no datasource": {Issuer: "i", Tenant: "t", Event: "e"},
			"no event":      {Issuer: "i", Tenant: "t", Datasource: "d"},
			"long tenant":   {Issuer: "i", Tenant: long, Datasource: "d", Event: "e"},
			"long tsField":  {Issuer: "i", Tenant: "t", Datasource: "d", Event: "e", TSField: long},
			"one token":     {Issuer: "i", Tenant: "t", Datasource: "d", Event: "e", Token: "abc"},
		} {
			if _, err := a.PutHook(ctx, h, false); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		if list, err := a.Hooks(ctx, "i", "t"); err != nil || len(list) != 0 {
			t.Fatalf("refused hooks stored: %+v %v", list, err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPebbleHookTokens(t *testing.T) {
	runHookTokensConformance(t, func(t *testing.T, clock *fakeClock) (queue.HookTokens, queue.HookTokens) {
		s := openPebble(t, clock).(*queue.Pebble)
		return s, s
	})
}

func TestPebbleHookTokensSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.PutHook(ctx, queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: "push", TSField: "ts"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = queue.OpenPebble(dir, queue.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	got, err := s.HookByTokens(ctx, "gh", h.APIToken, h.Token)
	if err != nil || got != h {
		t.Fatalf("after restart: %+v %v, want %+v", got, err, h)
	}
	// hooks are not events: the event listing and counts do not show them
	st, err := s.Stats(ctx)
	if err != nil || len(st.Counts) != 0 {
		t.Fatalf("stats: %+v %v", st, err)
	}
}

func TestNATSHookTokens(t *testing.T) {
	c := startNATSCluster(t, 3)
	urls := c.urls()
	var n int
	runHookTokensConformance(t, func(t *testing.T, clock *fakeClock) (queue.HookTokens, queue.HookTokens) {
		n++
		stream := fmt.Sprintf("hooks%d", n)
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

// benchHookByTokens looks up one of 1000 hooks per iteration.
func benchHookByTokens(b *testing.B, s queue.HookTokens) {
	ctx := context.Background()
	hooks := make([]queue.IssuedHook, 1000)
	for i := range hooks {
		h, err := s.PutHook(ctx, queue.IssuedHook{Issuer: "gh", Tenant: fmt.Sprintf("t%d", i%50), Datasource: "github", Event: fmt.Sprintf("e%d", i)}, false)
		if err != nil {
			b.Fatal(err)
		}
		hooks[i] = h
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h := hooks[i%len(hooks)]
		if _, err := s.HookByTokens(ctx, "gh", h.APIToken, h.Token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPebbleHookByTokens(b *testing.B) {
	s, err := queue.OpenPebble(b.TempDir(), queue.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	benchHookByTokens(b, s)
}

func BenchmarkNATSHookByTokens(b *testing.B) {
	c := startNATSCluster(b, 3)
	s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: c.urls(), Stream: "benchhooks", Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	benchHookByTokens(b, s)
}

// TestNATSHookUpsertsWhileLeaderMoves races upserts of one hook through
// two instances while the hooks stream's leader keeps stepping down: a
// read answered before a move can be stale for the write after it, and
// every upsert must still end in the one hook, within its timeout.
func TestNATSHookUpsertsWhileLeaderMoves(t *testing.T) {
	c := startNATSCluster(t, 3)
	urls := c.urls()
	open := func(url string) *queue.NATS {
		// a loaded machine may take seconds to elect a leader; a request
		// the old leader dropped is never answered, however long it waits
		s, err := queue.OpenNATS(context.Background(), queue.NATSOptions{URLs: []string{url}, Stream: "moves", Replicas: 3, Timeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(urls[0]), open(urls[2])
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	raced := 0 // rounds in which the leader moved before the upserts ended
	for round := range 4 {
		stop := make(chan struct{})
		moved := make(chan int)
		go func() {
			// the leader moves once, at a different point of each round's race
			select {
			case <-stop:
				moved <- 0
				return
			case <-time.After(time.Duration(round) * 10 * time.Millisecond):
			}
			_, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.KV_moves_hooks", nil, 2*time.Second)
			if err != nil {
				t.Errorf("step down: %v", err)
			}
			moved <- 1
		}()
		var wg sync.WaitGroup
		got := make([]queue.IssuedHook, 12)
		errs := make([]error, len(got))
		for i := range got {
			s := []queue.HookTokens{a, b}[i%2]
			wg.Go(func() {
				h := queue.IssuedHook{Issuer: "gh", Tenant: "acme", Datasource: "github", Event: fmt.Sprintf("e%d", round), TSField: fmt.Sprintf("ts%d", i)}
				got[i], errs[i] = s.PutHook(ctx, h, false)
			})
		}
		wg.Wait()
		close(stop)
		raced += <-moved
		for i := range got {
			if errs[i] != nil || got[i].Token != got[0].Token || got[i].APIToken != got[0].APIToken {
				t.Fatalf("round %d, upsert %d: %+v %v; first %+v", round, i, got[i], errs[i], got[0])
			}
		}
		h, err := a.HookByTokens(ctx, "gh", got[0].APIToken, got[0].Token)
		if err != nil || !strings.HasPrefix(h.TSField, "ts") {
			t.Fatalf("round %d: %+v %v", round, h, err)
		}
	}
	if raced == 0 {
		t.Fatal("in every round the upserts ended before the leader moved")
	}
}
