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
	"runtime"
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
				c.Close()
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
				resp.Body.Close()
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
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
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
