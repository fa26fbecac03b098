// Package rabbittest runs a RabbitMQ broker of a test's own: its node
// name, loopback ports, data directory, config, Erlang cookie (HOME) and
// port mapper, so it meets no other broker on the machine. It needs the
// rabbitmq-server package; without it a test skips, or fails under
// CI=true.
package rabbittest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Broker is one RabbitMQ node.
type Broker struct {
	// URL is the AMQP URL with the guest credentials, on 127.0.0.1.
	URL  string
	Port int
	node string
	dir  string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
}

var serial atomic.Int64

// tool finds a RabbitMQ script: the package's own copy (the one in
// /usr/sbin switches to the rabbitmq user when run as root) or PATH.
func tool(name string) string {
	if p := filepath.Join("/usr/lib/rabbitmq/bin", name); isExec(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start runs a new broker and stops it when the test ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	server, ctl := tool("rabbitmq-server"), tool("rabbitmqctl")
	if server == "" || ctl == "" {
		msg := "rabbitmq-server is not installed (apt-get install rabbitmq-server); the RabbitMQ tests need a real broker"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "mnesia"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	port, dist, epmd := freePort(t), freePort(t), freePort(t)
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nlog.console = false\nlog.file.level = warning\n", port)
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// no plugins: the management plugin would listen on a fixed port
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &Broker{
		URL:  fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port),
		Port: port,
		node: fmt.Sprintf("gwtest%d_%d@localhost", os.Getpid(), serial.Add(1)),
		dir:  dir,
	}
	b.env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+b.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbit.pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"ERL_EPMD_PORT="+strconv.Itoa(epmd),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	)
	t.Cleanup(func() {
		b.Stop(t)
		// the port mapper daemon the node started on its own port
		kill := exec.Command("epmd", "-port", strconv.Itoa(epmd), "-kill") //nolint:gosec // fixed tool, our port
		kill.Env = b.env
		_ = kill.Run()
	})
	b.Restart(t)
	return b
}

// Restart starts the broker again after Stop, on the same port and data.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	if b.cmd != nil {
		t.Fatal("rabbittest: broker already running")
	}
	cmd := exec.Command(tool("rabbitmq-server")) //nolint:gosec // the package's script
	cmd.Env = b.env
	cmd.Dir = b.dir
	out, err := os.OpenFile(filepath.Join(b.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Close() }()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(b.done)

	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := amqp.Dial(b.URL)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(b.dir, "server.out"))
			b.cmd = nil
			t.Fatalf("rabbitmq-server exited during start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rabbitmq-server did not accept AMQP connections: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops the node (rabbitmqctl stop), killing it if it does not end.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if b.cmd == nil {
		return
	}
	stop := exec.Command(tool("rabbitmqctl"), "-n", b.node, "stop") //nolint:gosec // the package's script
	stop.Env = b.env
	if out, err := stop.CombinedOutput(); err != nil {
		t.Logf("rabbitmqctl stop: %v: %s", err, out)
	}
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
	// whatever of the node outlived its script
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	b.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// Declare declares a durable topic exchange and a durable queue of a
// unique name bound to it with binding, and returns the queue's name.
func (b *Broker) Declare(t testing.TB, exchange, binding string) string {
	t.Helper()
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare(fmt.Sprintf("test-%s-%d", exchange, serial.Add(1)), true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, binding, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return q.Name
}

// Consume reads a queue until the test ends (messages are acknowledged
// on delivery).
func (b *Broker) Consume(t testing.TB, queue string) <-chan amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return deliveries
}

// Next waits up to 20s for a delivery.
func Next(t testing.TB, deliveries <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-deliveries:
		if !ok {
			t.Fatal("consumer closed")
		}
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no message within 20s")
	}
	return amqp.Delivery{}
}
