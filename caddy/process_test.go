package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// caddyProcess is the built binary running from a test.
type caddyProcess struct {
	cmd    *exec.Cmd
	logs   bytes.Buffer
	exited chan struct{} // closed when the process has exited and its output is in logs
}

// start starts the process; one goroutine waits for its exit.
func (p *caddyProcess) start(t *testing.T) {
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
}

// listeners are loopback listeners the test opens once (on a port the
// system picks) and hands to every Caddy process it starts, as fd/3,
// fd/4, ... in the order given: no port is found free, closed and then
// listened on again, which would race with other processes. While no
// Caddy runs, connections wait in the listener's backlog.
type listeners []*net.TCPListener

func listenLoopback(t *testing.T, n int) listeners {
	t.Helper()
	var lns listeners
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		lns = append(lns, l.(*net.TCPListener))
	}
	return lns
}

// port is the port of the i-th listener.
func (lns listeners) port(i int) int { return lns[i].Addr().(*net.TCPAddr).Port }

// startupLimit bounds how long a test waits for Caddy to serve. A config
// with a NATS store creates its streams at load, which may take up to the
// store's 30 s setup bound on a cluster that is still forming or busy.
const startupLimit = 2 * time.Minute

// runCaddyOn starts `bin run --config <config> --adapter caddyfile` in dir
// with lns as its fd/3, fd/4, ..., and waits until the first one answers
// an HTTP request (any status), failing at once if Caddy exits first.
func runCaddyOn(t *testing.T, bin, dir, config string, lns listeners) *caddyProcess {
	t.Helper()
	p := &caddyProcess{cmd: exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	for _, l := range lns {
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }() // the child has its own copy
		p.cmd.ExtraFiles = append(p.cmd.ExtraFiles, f)
	}
	p.start(t)
	// the request waits in the listener's backlog until Caddy serves
	answered := make(chan error, 1)
	go func() {
		client := &http.Client{Timeout: startupLimit}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", lns.port(0)))
		if err == nil {
			_ = resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			p.kill()
			t.Fatalf("caddy did not start: %v\n%s", err, p.logs.String())
		}
	case <-p.exited:
		t.Fatalf("caddy exited before serving: %v\n%s", p.cmd.ProcessState, p.logs.String())
	}
	return p
}

// kill ends the process with SIGKILL: no shutdown of any kind.
func (p *caddyProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop interrupts the process, kills it after 10s, and shows its output
// when the test failed.
func (p *caddyProcess) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if t.Failed() {
		t.Logf("caddy output:\n%s", p.logs.String())
	}
}

// waitDial reports whether addr accepts a connection within d.
func waitDial(addr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.Close()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ledger records the ids answered 202 and the Idempotency-Keys an
// upstream received.
type ledger struct {
	mu        sync.Mutex
	accepted  map[string]bool
	delivered map[string]int
}

func newLedger() *ledger {
	return &ledger{accepted: map[string]bool{}, delivered: map[string]int{}}
}

func (l *ledger) accept(id string) {
	l.mu.Lock()
	l.accepted[id] = true
	l.mu.Unlock()
}

func (l *ledger) deliver(key string) {
	l.mu.Lock()
	l.delivered[key]++
	l.mu.Unlock()
}

// counts returns the accepted ids and those of them not delivered yet.
func (l *ledger) counts() (accepted, missing int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.accepted {
		if l.delivered[id] == 0 {
			missing++
		}
	}
	return len(l.accepted), missing
}

// waitAllDelivered waits until every accepted id reached the upstream and
// returns how many reached it more than once.
func (l *ledger) waitAllDelivered(t *testing.T, within time.Duration) (dupes int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		accepted, missing := l.counts()
		if missing == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d accepted events not delivered, among them %q", missing, accepted, l.missingSample(5))
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.delivered {
		if n > 1 {
			dupes++
		}
	}
	return dupes
}

// missingSample returns up to n accepted ids not delivered, sorted.
func (l *ledger) missingSample(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.accepted {
		if l.delivered[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out[:min(n, len(out))]
}
