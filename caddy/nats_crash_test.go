package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	cmd  *exec.Cmd
	port int
	mon  int
}

// TestAsyncNATSNodeKilled runs the built Caddy in async mode on a 3-node
// NATS JetStream cluster of real nats-server processes (built from the
// nats-server module), kills one node with SIGKILL under concurrent load,
// and checks that every event answered 202 reaches the upstream. While
// the cluster fails over, the gateway may answer 503 (it could not write
// durably); it must never answer 202 for an event it then loses. Every
// request is answered, 202 or 503 with Retry-After, within the store's
// accept_timeout: the senders' own timeout is that bound plus a 5s margin,
// and no sender may reach it.
func TestAsyncNATSNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Caddy and three nats-server processes")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	natsBin := filepath.Join(dir, "nats-server")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goCommand(t), "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("building nats-server: %v\n%s", err, out)
	}

	// nats-server cannot inherit a listener, and a JetStream cluster node
	// needs its routes when it starts, so these ports are found free first
	// (the one place in these tests that does; Caddy inherits its own).
	nodes := make([]*natsNode, 3)
	var routes []string
	cluster := make([]int, 3)
	for i := range nodes {
		nodes[i] = &natsNode{port: freePort(t), mon: freePort(t)}
		cluster[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]))
	}
	for i, n := range nodes {
		n.cmd = exec.Command(natsBin, "-js", "-sd", filepath.Join(dir, fmt.Sprintf("n%d", i)),
			"-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-m", fmt.Sprint(n.mon), "-n", fmt.Sprintf("n%d", i),
			"--cluster_name", "gateway", "--cluster", routes[i], "--routes", strings.Join(routes, ","))
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			_ = n.cmd.Wait()
		})
	}
	// ready when every node reports JetStream healthy (meta leader elected)
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range nodes {
		for {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.mon))
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the NATS cluster did not become healthy")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	l := newLedger()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		l.deliver(r.Header.Get("Idempotency-Key"))
	}))
	defer upstream.Close()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	lns := listenLoopback(t, 2)
	// the bound on an accept, and the senders' timeout: well past it
	const acceptTimeout = 2 * time.Second
	senderTimeout := acceptTimeout + 5*time.Second
	config := fmt.Sprintf(`{
	admin fd/4
	auto_https off
	persist_config off
	webhook_gateway {
		store nats %s {
			replicas 3
			accept_timeout %v
		}
		workers 8
	}
}

http://127.0.0.1:%d {
	bind fd/3
	webhook_gateway /hooks {
		auth api_key k
		mode async
		forward %s/in {
			retries 30
			backoff 50ms 500ms
		}
	}
}
`, strings.Join(urls, " "), acceptTimeout, lns.port(0), upstream.URL)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", lns.port(0))
	proc := runCaddyOn(t, bin, dir, caddyfile, lns)
	defer proc.stop(t)

	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// the stream every accept writes to: the record of the event
	const records = "KV_webhook_gateway_events"

	load := (&senders{allow503: true, timeout: senderTimeout}).start(t, "http://"+addr+"/hooks", 16, l)
	time.Sleep(2 * time.Second)
	// the victim is the node that leads the records stream: the one
	// serving every write of an accept
	leader := streamLeader(t, js, records, "")
	victim := -1
	for i := range nodes {
		if leader == fmt.Sprintf("n%d", i) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("the leader of %s is %q, not a node of this cluster", records, leader)
	}
	_ = nodes[victim].cmd.Process.Signal(syscall.SIGKILL)
	_ = nodes[victim].cmd.Wait()
	killed := time.Now()
	acceptedAtKill, _ := l.counts()
	// the failover: another node leads the stream, and accepts resume
	moved := streamLeader(t, js, records, leader)
	for {
		if n, _ := l.counts(); n > acceptedAtKill {
			break
		}
		if time.Since(killed) > time.Minute {
			load.halt()
			t.Fatalf("no event accepted in the minute after the stream leader %s was killed (%d before; %s leads now; %d answered 503, %d transport errors)",
				leader, acceptedAtKill, moved, load.unavailable.Load(), load.transport.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resumed := time.Since(killed)
	time.Sleep(2 * time.Second) // load goes on after the failover
	load.halt()
	accepted, _ := l.counts()
	if accepted < 50 {
		t.Fatalf("only %d events accepted", accepted)
	}
	dupes := l.waitAllDelivered(t, 90*time.Second)
	// Caddy runs throughout: a request without an answer is one that
	// waited on the store past the senders' timeout
	if n := load.transport.Load(); n > 0 {
		t.Errorf("%d requests got no answer within the senders' %v timeout (accept_timeout %v; the longest answered took %v)",
			n, senderTimeout, acceptTimeout, time.Duration(load.longest.Load()).Round(time.Millisecond))
	}
	if load.unavailable.Load() == 0 {
		t.Logf("no 503 during the failover")
	}
	t.Logf("%d events accepted (%d after the kill; the first %v after it) with the leader of %s (%s) killed mid-load and %s elected, all delivered (%d more than once); %d requests answered 202, %d answered 503 during the failover, %d got no answer within the senders' %v timeout; the longest answer took %v (accept_timeout %v)",
		accepted, accepted-acceptedAtKill, resumed.Round(time.Millisecond), records, leader, moved, dupes, load.accepted.Load(), load.unavailable.Load(),
		load.transport.Load(), senderTimeout, time.Duration(load.longest.Load()).Round(time.Millisecond), acceptTimeout)
}

// streamLeader waits up to 60s for stream to have a leader other than not
// and returns its server name.
func streamLeader(t *testing.T, js jetstream.JetStream, stream, not string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != not {
				cancel()
				return info.Cluster.Leader
			}
		}
		cancel()
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream %s has no leader other than %q (%v)", stream, not, last)
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
