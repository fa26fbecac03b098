package reply_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/reply"
)

// listener accepts and closes connections, remembering the peers it saw.
type listener struct {
	net.Listener
	mu    sync.Mutex
	peers []string
	seen  chan struct{}
}

func listen(t *testing.T, addr string) *listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ln := &listener{Listener: l, seen: make(chan struct{}, 1)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ln.mu.Lock()
			ln.peers = append(ln.peers, c.RemoteAddr().String())
			ln.mu.Unlock()
			select {
			case ln.seen <- struct{}{}:
			default:
			}
			c.Close()
		}
	}()
	return ln
}

func (l *listener) port() string {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// connectionsSoFar returns how many connections reached the listener before
// now. It connects once itself and waits until that connection is accepted:
// the accept queue is in order, so every earlier connection has been
// counted by then.
func (l *listener) connectionsSoFar(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me := c.LocalAddr().String()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		for i, p := range l.peers {
			if p == me {
				l.peers = append(l.peers[:i], l.peers[i+1:]...) // the probe is not counted
				n := len(l.peers)
				l.mu.Unlock()
				return n
			}
		}
		l.mu.Unlock()
		select {
		case <-l.seen:
		case <-timeout:
			t.Fatal("the listener did not accept a probe connection")
		}
	}
}

// localNonPublic returns the addresses of this machine's interfaces that are
// neither loopback nor public (RFC 1918, unique-local, link-local with zone,
// documentation ranges on test networks): real servers can listen there.
func localNonPublic(t *testing.T) []netip.Addr {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr()
			if ip.IsLoopback() || reply.Public(ip) {
				continue
			}
			if ip.IsLinkLocalUnicast() {
				ip = ip.WithZone(ifc.Name)
			}
			out = append(out, ip)
		}
	}
	return out
}

// Every address that is not public is refused when dialled, by address or by
// a name that resolves to it, and the same dial reaches the server once
// allow names it. Loopback rows have a real server behind them that sees no
// connection; the rest cannot be reached from a test, so the refusal is
// proven by the *AddressError, which only the check returns.
func TestGuardRefusesNonPublic(t *testing.T) {
	v4 := listen(t, "127.0.0.1:0")
	type row struct {
		addr    string // dialled
		refused string // address in the error
		server  *listener
		allow   string // a pattern under which the dial connects
	}
	rows := []row{
		{"127.0.0.1:" + v4.port(), "127.0.0.1", v4, "127.0.0.1"},
		{"0.0.0.0:" + v4.port(), "0.0.0.0", v4, "0.0.0.0"}, // Linux connects 0.0.0.0 to the local host
		{"[::ffff:127.0.0.1]:" + v4.port(), "127.0.0.1", v4, "127.0.0.0/8"},
		{"localhost:" + v4.port(), "127.0.0.1", v4, "localhost"},
		{"10.0.0.1:443", "10.0.0.1", nil, ""},
		{"172.16.0.1:443", "172.16.0.1", nil, ""},
		{"192.168.0.1:443", "192.168.0.1", nil, ""},
		{"100.64.0.1:443", "100.64.0.1", nil, ""},
		{"169.254.169.254:80", "169.254.169.254", nil, ""},
		{"[::ffff:169.254.169.254]:80", "169.254.169.254", nil, ""},
		{"[fd00:ec2::254]:80", "fd00:ec2::254", nil, ""},
		{"[64:ff9b::a9fe:a9fe]:80", "64:ff9b::a9fe:a9fe", nil, ""},
		{"[2002:a9fe:a9fe::1]:80", "2002:a9fe:a9fe::1", nil, ""},
		{"[fe80::1%lo]:443", "fe80::1%lo", nil, ""},
	}
	if l6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l6.Close()
		v6 := listen(t, "[::1]:0")
		rows = append(rows,
			row{"[::1]:" + v6.port(), "::1", v6, "::1"},
			row{"[::]:" + v6.port(), "::", v6, "::"},
		)
	} else {
		t.Logf("no IPv6 loopback here (%v): the ::1 rows are not run", err)
	}
	for _, ip := range localNonPublic(t) {
		l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err == nil {
			var c net.Conn
			if c, err = net.Dial("tcp", l.Addr().String()); err == nil {
				c.Close()
			}
			l.Close()
		}
		if err != nil {
			t.Logf("interface address %s cannot be served and reached here (%v): not run", ip, err)
			continue
		}
		srv := listen(t, net.JoinHostPort(ip.String(), "0"))
		rows = append(rows, row{net.JoinHostPort(ip.String(), srv.port()), ip.String(), srv, ip.WithZone("").String()})
	}

	refusing := reply.NewGuard(nil)
	for _, r := range rows {
		t.Run(r.addr, func(t *testing.T) {
			ctx := context.Background()
			base := 0
			if r.server != nil {
				base = r.server.connectionsSoFar(t)
			}
			conn, err := refusing.DialContext(ctx, "tcp", r.addr)
			if conn != nil {
				conn.Close()
			}
			var ae *reply.AddressError
			if !errors.As(err, &ae) {
				t.Fatalf("dial %s: %v, want an *AddressError", r.addr, err)
			}
			if r.refused != "" && ae.IP.String() != r.refused {
				t.Errorf("refused %s, want %s", ae.IP, r.refused)
			}
			if !strings.Contains(ae.Error(), "is not public and not allowed") || !strings.Contains(ae.Error(), ae.IP.String()) {
				t.Errorf("message %q", ae.Error())
			}
			if r.server == nil {
				return
			}
			if n := r.server.connectionsSoFar(t) - base; n != 0 {
				t.Fatalf("the server saw %d connections from a refused dial", n)
			}
			// The same dial, allowed, reaches the same server.
			allowed := reply.NewGuard(mustAllow(t, r.allow))
			conn, err = allowed.DialContext(ctx, "tcp", r.addr)
			if err != nil {
				t.Fatalf("dial %s with allow %s: %v", r.addr, r.allow, err)
			}
			conn.Close()
			if n := r.server.connectionsSoFar(t) - base; n != 1 {
				t.Fatalf("the server saw %d connections, want 1", n)
			}
		})
	}
}

func TestGuardErrors(t *testing.T) {
	g := reply.NewGuard(nil)
	for _, c := range []struct{ network, addr string }{
		{"udp", "8.8.8.8:53"},
		{"unix", "/tmp/x.sock"},
		{"tcp", "no-port"},
	} {
		if conn, err := g.DialContext(context.Background(), c.network, c.addr); err == nil {
			conn.Close()
			t.Errorf("DialContext(%s, %s) succeeded", c.network, c.addr)
		}
	}
	e := &reply.AddressError{Host: "example.test", IP: netip.MustParseAddr("10.0.0.1")}
	if got, want := e.Error(), "callback address 10.0.0.1 (of example.test) is not public and not allowed"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &reply.AddressError{Host: "10.0.0.1", IP: netip.MustParseAddr("10.0.0.1")}
	if got, want := e.Error(), "callback address 10.0.0.1 is not public and not allowed"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// counting is an HTTP handler that counts its requests.
type counting struct {
	n       atomic.Int32
	handler http.HandlerFunc
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	if c.handler != nil {
		c.handler(w, r)
		return
	}
	_, _ = io.WriteString(w, "called back")
}

func tlsServer(t *testing.T, h http.Handler, http2 bool) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = http2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

// A real HTTPS receiver on loopback is reached when allow names its address
// and its certificate is trusted through RootCAs, and refused otherwise.
func TestClientHTTPS(t *testing.T) {
	h := &counting{}
	srv, pool := tlsServer(t, h, false)
	for _, c := range []struct {
		name    string
		allow   []string
		roots   *x509.CertPool
		wantErr func(error) bool
	}{
		{"allowed and trusted", []string{"127.0.0.1"}, pool, nil},
		{"allowed by range", []string{"127.0.0.0/8"}, pool, nil},
		{"public only", nil, pool, isAddressError},
		{"other ranges", []string{"10.0.0.0/8", "::1", "*.example.com", "localhost"}, pool, isAddressError},
		{"system roots", []string{"127.0.0.1"}, nil, isUnknownAuthority},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.n.Load()
			client := reply.NewClient(reply.ClientOptions{Allow: mustAllow(t, c.allow...), RootCAs: c.roots})
			defer client.CloseIdleConnections()
			resp, err := client.Get(srv.URL + "/cb?id=x")
			if c.wantErr != nil {
				if resp != nil {
					resp.Body.Close()
				}
				if !c.wantErr(err) {
					t.Fatalf("GET: %v", err)
				}
				if c.roots != nil && h.n.Load() != before {
					t.Fatal("the receiver was called")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "called back" || h.n.Load() != before+1 {
				t.Fatalf("status %d body %q calls %d", resp.StatusCode, body, h.n.Load()-before)
			}
		})
	}
}

func isAddressError(err error) bool {
	var ae *reply.AddressError
	return errors.As(err, &ae) && ae.IP == netip.MustParseAddr("127.0.0.1")
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

func TestClientHTTP2(t *testing.T) {
	srv, pool := tlsServer(t, &counting{}, true)
	client := reply.NewClient(reply.ClientOptions{Allow: mustAllow(t, "127.0.0.1"), RootCAs: pool})
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
}

// A redirect is answered as is: the client does not follow it, so the
// server it points to, a private address, gets no request, even when its
// address is allowed.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	target := &counting{}
	second := httptest.NewServer(target)
	defer second.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			first, pool := tlsServer(t, &counting{handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, second.URL+"/internal", status)
			}}, false)
			client := reply.NewClient(reply.ClientOptions{Allow: mustAllow(t, "127.0.0.1"), RootCAs: pool})
			defer client.CloseIdleConnections()
			resp, err := client.Post(first.URL, "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != status || resp.Header.Get("Location") != second.URL+"/internal" {
				t.Fatalf("status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if n := target.n.Load(); n != 0 {
				t.Fatalf("the redirect target got %d requests", n)
			}
		})
	}
	// The target is reachable with the same options: the refusal above is
	// the redirect rule's.
	resp, err := reply.NewClient(reply.ClientOptions{Allow: mustAllow(t, "127.0.0.1")}).Get(second.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if target.n.Load() != 1 {
		t.Fatal("the redirect target was not reachable")
	}
}

// A name that resolves to loopback is refused when dialled, also through
// the client, unless allow names it.
func TestClientNameResolvingToLoopback(t *testing.T) {
	h := &counting{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	u := "http://localhost:" + port + "/cb"
	for _, c := range []struct {
		allow []string
		ok    bool
	}{
		{nil, false},
		{[]string{"*.localhost"}, false}, // not the apex
		{[]string{"hooks.example.com", "10.0.0.0/8"}, false},
		{[]string{"localhost"}, true},
		{[]string{"LocalHost."}, true},
		{[]string{"127.0.0.1", "::1"}, true}, // every address it resolves to
	} {
		before := h.n.Load()
		client := reply.NewClient(reply.ClientOptions{Allow: mustAllow(t, c.allow...)})
		resp, err := client.Get(u)
		client.CloseIdleConnections()
		if resp != nil {
			resp.Body.Close()
		}
		if !c.ok {
			var ae *reply.AddressError
			if !errors.As(err, &ae) || ae.Host != "localhost" || !ae.IP.IsLoopback() {
				t.Errorf("allow %v: %v, want an *AddressError for localhost", c.allow, err)
			}
			if h.n.Load() != before {
				t.Errorf("allow %v: the server was called", c.allow)
			}
			continue
		}
		if err != nil || resp.StatusCode != 200 || h.n.Load() != before+1 {
			t.Errorf("allow %v: %v", c.allow, err)
		}
	}
}

func TestTransportOptions(t *testing.T) {
	tr := reply.NewTransport(reply.ClientOptions{})
	if tr.Proxy != nil {
		t.Error("the transport takes a proxy from the environment")
	}
	if !tr.ForceAttemptHTTP2 || tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs != nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("TLS settings %+v", tr.TLSClientConfig)
	}
	if tr.DialContext == nil || tr.TLSHandshakeTimeout <= 0 || tr.ResponseHeaderTimeout != reply.DefaultTimeout {
		t.Error("dialer or timeouts missing")
	}
	c := reply.NewClient(reply.ClientOptions{Timeout: 5 * time.Second})
	if c.Timeout != 5*time.Second || c.CheckRedirect == nil {
		t.Errorf("client timeout %v", c.Timeout)
	}
	if reply.NewClient(reply.ClientOptions{}).Timeout != reply.DefaultTimeout {
		t.Error("default timeout")
	}
}

func TestLoadCAs(t *testing.T) {
	h := &counting{}
	srv, _ := tlsServer(t, h, false)
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := reply.LoadCAs([]string{good})
	if err != nil {
		t.Fatal(err)
	}
	client := reply.NewClient(reply.ClientOptions{Allow: mustAllow(t, "127.0.0.1"), RootCAs: pool})
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h.n.Load() != 1 {
		t.Fatal("the receiver was not called")
	}

	if pool, err := reply.LoadCAs(nil); pool != nil || err != nil {
		t.Errorf("LoadCAs(nil) = %v, %v; want nil, nil (system roots)", pool, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "missing.pem"), notPEM, big, dir} {
		_, err := reply.LoadCAs([]string{good, f})
		if err == nil || !strings.Contains(err.Error(), f) || strings.Count(err.Error(), f) != 1 {
			t.Errorf("LoadCAs(%s) = %v, want an error naming the file once", f, err)
		}
	}
}
