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
	"syscall"
	"testing"
	"time"
)

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

	var (
		mu        sync.Mutex
		delivered = map[string]int{}
		upSince   atomic.Int64 // unix nanos after which the upstream answers 200
	)
	upSince.Store(time.Now().Add(2 * time.Second).UnixNano())
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if time.Now().UnixNano() < upSince.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer upstream.Close()

	port, admin := freePort(t), freePort(t)
	caddyfile := filepath.Join(dir, "Caddyfile")
	config := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	webhook_gateway {
		store bolt %s
		workers 8
	}
}

http://127.0.0.1:%d {
	webhook_gateway /hooks {
		auth api_key k
		mode async
		forward %s/in {
			retries 60
			backoff 50ms 300ms
		}
	}
}
`, admin, filepath.Join(dir, "events.db"), port, upstream.URL)
	if err := os.WriteFile(caddyfile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("caddy did not start:\n%s", logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	cmd := start()
	url := fmt.Sprintf("http://127.0.0.1:%d/hooks", port)
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		accepted  sync.Map // id -> true
		nAccepted atomic.Int64
		stop      atomic.Bool
		wg        sync.WaitGroup
	)
	for g := range 16 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", "k")
				resp, err := client.Do(req)
				if err != nil {
					continue // the process is gone: nothing was promised
				}
				var acc struct{ ID, Status string }
				err = json.NewDecoder(resp.Body).Decode(&acc)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					if err != nil || acc.ID == "" || acc.Status != "queued" {
						t.Errorf("202 without an id: %v %+v", err, acc)
						continue
					}
					accepted.Store(acc.ID, true)
					nAccepted.Add(1)
				}
			}
		})
	}
	// let load run across the upstream's outage, then kill mid-stream
	time.Sleep(3 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stop.Store(true)
	wg.Wait()
	if nAccepted.Load() < 50 {
		t.Fatalf("only %d events accepted before the kill: the load did not run", nAccepted.Load())
	}

	cmd = start()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		missing := 0
		mu.Lock()
		accepted.Range(func(k, _ any) bool {
			if delivered[k.(string)] == 0 {
				missing++
			}
			return true
		})
		mu.Unlock()
		if missing == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d accepted events never delivered after the restart", missing, nAccepted.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	dupes := 0
	for _, n := range delivered {
		if n > 1 {
			dupes++
		}
	}
	t.Logf("%d events accepted before SIGKILL, all delivered; %d unique keys at the upstream, %d delivered more than once (at least once)", nAccepted.Load(), len(delivered), dupes)
	mu.Unlock()
}

// buildCaddy builds this directory's main package into dir.
func buildCaddy(t *testing.T, dir string) string {
	t.Helper()
	goBin := goCommand(t)
	bin := filepath.Join(dir, "caddy")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
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
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAsyncReloadUnderLoad reloads the config of a running Caddy several
// times while events arrive: the store is opened once (a second open of
// the bolt file would fail after its lock timeout and the reload with it),
// every reload succeeds, every 202 is delivered, and the process's
// goroutines come back to where they were (no worker or store goroutine
// left behind by an old config).
func TestAsyncReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	var (
		mu        sync.Mutex
		delivered = map[string]int{}
	)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(5 * time.Millisecond) // deliveries are in flight during reloads
		mu.Lock()
		delivered[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
	}))
	defer upstream.Close()

	port, admin := freePort(t), freePort(t)
	configFor := func(workers int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	webhook_gateway {
		store bolt %s
		workers %d
	}
}

http://127.0.0.1:%d {
	webhook_gateway /hooks {
		auth api_key k
		mode async
		forward %s/in {
			retries 20
			backoff 20ms 200ms
		}
	}
}
`, admin, filepath.Join(dir, "events.db"), workers, port, upstream.URL)
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(configFor(8)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy output:\n%s", logs.String())
		}
	}()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
	waitUp := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(adminURL + "/config/")
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(waitUp) {
			t.Fatal("caddy did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	goroutines := func() int {
		resp, err := http.Get(adminURL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var n int
		if _, err := fmt.Fscanf(resp.Body, "goroutine profile: total %d", &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	reload := func(workers int) {
		t.Helper()
		resp, err := http.Post(adminURL+"/load", "text/caddyfile", bytes.NewBufferString(configFor(workers)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
	}
	// one reload first, so lazily started runtime goroutines exist in the baseline
	reload(8)
	time.Sleep(500 * time.Millisecond)
	before := goroutines()

	url := fmt.Sprintf("http://127.0.0.1:%d/hooks", port)
	var (
		accepted, refused atomic.Int64
		transport         atomic.Int64 // a keep-alive connection closed by the old server as the request went out
		ids               sync.Map
		stop              atomic.Bool
		wg                sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", "k")
				resp, err := client.Do(req)
				if err != nil {
					transport.Add(1)
					continue
				}
				var acc struct{ ID string }
				_ = json.NewDecoder(resp.Body).Decode(&acc)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted && acc.ID != "" {
					ids.Store(acc.ID, true)
					accepted.Add(1)
				} else {
					refused.Add(1)
					t.Errorf("status %d during reloads", resp.StatusCode)
				}
			}
		})
	}
	for i := range 6 {
		time.Sleep(300 * time.Millisecond)
		reload([]int{4, 8}[i%2])
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if accepted.Load() < 50 {
		t.Fatalf("only %d events accepted during the reloads", accepted.Load())
	}
	if refused.Load() > 0 {
		t.Errorf("%d requests refused during reloads", refused.Load())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		mu.Lock()
		ids.Range(func(k, _ any) bool {
			if delivered[k.(string)] == 0 {
				missing++
			}
			return true
		})
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted events not delivered", missing, accepted.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// same config as the baseline; idle keep-alive connections (ours to
	// Caddy, Caddy's to the upstream) are closed so only what the configs
	// started is counted
	reload(8)
	client.CloseIdleConnections()
	upstream.CloseClientConnections()
	var after int
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		if after = goroutines(); after <= before+4 {
			break
		}
	}
	if after > before+4 {
		resp, _ := http.Get(adminURL + "/debug/pprof/goroutine?debug=1")
		dump, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("goroutines: %d before the reloads, %d after\n%s", before, after, dump)
	}
	t.Logf("%d events accepted across 7 reloads, all delivered (%d requests lost their keep-alive connection to an old server); goroutines %d before, %d after",
		accepted.Load(), transport.Load(), before, after)
}
