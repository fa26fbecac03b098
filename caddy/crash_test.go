package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asyncConfig is a Caddyfile with one async route to upstream, its events
// in dir, and the given delivery workers and forward backoff.
func asyncConfig(admin, port int, dir string, workers int, upstream, retries string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	webhook_gateway {
		store pebble %s
		workers %d
	}
}

http://127.0.0.1:%d {
	webhook_gateway /hooks {
		auth api_key k
		mode async
		forward %s/in {
			%s
		}
	}
}
`, admin, filepath.Join(dir, "events"), workers, port, upstream, retries)
}

// senders post events to url from n goroutines until stop is set; ids
// answered 202 go to the ledger. A transport error (the process gone, or a
// keep-alive connection closed under the request) promises nothing and is
// counted; any status but 202 fails the test.
type senders struct {
	wg        sync.WaitGroup
	stop      atomic.Bool
	transport atomic.Int64
	// allow503: a store that cannot write answers 503 (never 202); counted
	// instead of failing when set
	allow503    bool
	unavailable atomic.Int64
}

func startSenders(t *testing.T, url string, n int, l *ledger) *senders {
	return startSendersOpts(t, url, n, l, false)
}

func startSendersOpts(t *testing.T, url string, n int, l *ledger, allow503 bool) *senders {
	s := &senders{allow503: allow503}
	client := &http.Client{Timeout: 5 * time.Second}
	for g := range n {
		s.wg.Go(func() {
			for i := 0; !s.stop.Load(); i++ {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", "k")
				resp, err := client.Do(req)
				if err != nil {
					s.transport.Add(1)
					continue
				}
				var acc struct{ ID, Status string }
				err = json.NewDecoder(resp.Body).Decode(&acc)
				_ = resp.Body.Close()
				if s.allow503 && resp.StatusCode == http.StatusServiceUnavailable {
					s.unavailable.Add(1)
					continue
				}
				if resp.StatusCode != http.StatusAccepted || err != nil || acc.ID == "" || acc.Status != "queued" {
					t.Errorf("answer %d %+v (%v)", resp.StatusCode, acc, err)
					continue
				}
				l.accept(acc.ID)
			}
		})
	}
	return s
}

func (s *senders) halt() {
	s.stop.Store(true)
	s.wg.Wait()
}

// TestAsyncSurvivesSIGKILL runs the built Caddy in async mode under
// concurrent load, kills it with SIGKILL mid-stream, and starts it again
// on the same store. Every event that was answered 202 must reach the
// upstream at least once (counted by unique Idempotency-Key); none is
// lost. The upstream refuses everything for the first part of the run,
// so events are also waiting on their retry schedule when the kill comes.
func TestAsyncSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	l := newLedger()
	var upSince atomic.Int64 // unix nanos after which the upstream answers 200
	upSince.Store(time.Now().Add(2 * time.Second).UnixNano())
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if time.Now().UnixNano() < upSince.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		l.deliver(r.Header.Get("Idempotency-Key"))
	}))
	defer upstream.Close()

	port, admin := freePort(t), freePort(t)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(asyncConfig(admin, port, dir, 8, upstream.URL, "retries 60\n\t\t\tbackoff 50ms 300ms")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	proc := runCaddy(t, bin, dir, caddyfile, addr)
	load := startSenders(t, "http://"+addr+"/hooks", 16, l)
	// let load run across the upstream's outage, then kill mid-stream
	time.Sleep(3 * time.Second)
	proc.kill()
	load.halt()
	accepted, _ := l.counts()
	if accepted < 50 {
		t.Fatalf("only %d events accepted before the kill: the load did not run", accepted)
	}

	proc = runCaddy(t, bin, dir, caddyfile, addr)
	defer proc.stop(t)
	dupes := l.waitAllDelivered(t, 60*time.Second)
	t.Logf("%d events accepted before SIGKILL, all delivered after the restart; %d delivered more than once (at least once)", accepted, dupes)
}

// TestAsyncReloadUnderLoad reloads the config of a running Caddy several
// times while events arrive: the store is opened once (a second open of
// the store's directory lock would refuse it and the reload with it),
// every reload succeeds, every 202 is delivered, and the process's
// goroutines come back to where they were (no worker or store goroutine
// left behind by an old config).
func TestAsyncReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	l := newLedger()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(5 * time.Millisecond) // deliveries are in flight during reloads
		l.deliver(r.Header.Get("Idempotency-Key"))
	}))
	defer upstream.Close()

	port, admin := freePort(t), freePort(t)
	configFor := func(workers int) string {
		return asyncConfig(admin, port, dir, workers, upstream.URL, "retries 20\n\t\t\tbackoff 20ms 200ms")
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(configFor(8)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	proc := runCaddy(t, bin, dir, caddyfile, addr)
	defer proc.stop(t)
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
	if !waitDial(fmt.Sprintf("127.0.0.1:%d", admin), 10*time.Second) {
		t.Fatal("no admin endpoint")
	}
	goroutines := func() (int, string) {
		resp, err := http.Get(adminURL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		dump, _ := io.ReadAll(resp.Body)
		var n int
		if _, err := fmt.Sscanf(string(dump), "goroutine profile: total %d", &n); err != nil {
			t.Fatal(err)
		}
		return n, string(dump)
	}
	reload := func(workers int) {
		t.Helper()
		resp, err := http.Post(adminURL+"/load", "text/caddyfile", bytes.NewBufferString(configFor(workers)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
	}
	// one reload first, so lazily started runtime goroutines exist in the baseline
	reload(8)
	time.Sleep(500 * time.Millisecond)
	before, _ := goroutines()

	load := startSenders(t, "http://"+addr+"/hooks", 8, l)
	for i := range 6 {
		time.Sleep(300 * time.Millisecond)
		reload([]int{4, 8}[i%2])
	}
	time.Sleep(300 * time.Millisecond)
	load.halt()
	accepted, _ := l.counts()
	if accepted < 50 {
		t.Fatalf("only %d events accepted during the reloads", accepted)
	}
	l.waitAllDelivered(t, 30*time.Second)

	// same config as the baseline; idle keep-alive connections (Caddy's to
	// the upstream) are closed so only what the configs started is counted
	reload(8)
	upstream.CloseClientConnections()
	var after int
	var dump string
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		if after, dump = goroutines(); after <= before+4 {
			break
		}
	}
	if after > before+4 {
		t.Fatalf("goroutines: %d before the reloads, %d after\n%s", before, after, dump)
	}
	t.Logf("%d events accepted across 7 reloads, all delivered (%d requests lost their keep-alive connection to an old server); goroutines %d before, %d after",
		accepted, load.transport.Load(), before, after)
}

// buildCaddy builds this directory's main package into dir.
func buildCaddy(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "caddy")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCommand(t), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
