package reply

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a real DNS server on loopback UDP answering A queries from
// answer(name, n), n counting the A queries for that name from 1. AAAA
// queries get no answers.
type dnsServer struct {
	conn   net.PacketConn
	answer func(name string, n int) []netip.Addr
	mu     sync.Mutex
	count  map[string]int
}

func startDNS(t *testing.T, answer func(name string, n int) []netip.Addr) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: pc, answer: answer, count: map[string]int{}}
	t.Cleanup(func() { pc.Close() })
	go s.serve()
	return s
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := s.respond(buf[:n]); ok {
			_, _ = s.conn.WriteTo(resp, from)
		}
	}
}

func (s *dnsServer) respond(msg []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	var addrs []netip.Addr
	if q.Type == dnsmessage.TypeA {
		s.mu.Lock()
		s.count[name]++
		n := s.count[name]
		s.mu.Unlock()
		addrs = s.answer(name, n)
	}
	rcode := dnsmessage.RCodeSuccess
	if addrs == nil && q.Type == dnsmessage.TypeA {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: rcode})
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
		if b.AResource(rh, dnsmessage.AResource{A: a.As4()}) != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

func (s *dnsServer) queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[name]
}

// guardVia is a Guard whose lookups, its own and the dialler's, go to s.
func guardVia(s *dnsServer, allow *Allow) *Guard {
	g := NewGuard(allow)
	g.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.conn.LocalAddr().String())
	}}
	return g
}

// accepted counts the connections a loopback listener accepts.
type accepted struct {
	net.Listener
	mu    sync.Mutex
	peers []string
	seen  chan struct{}
}

func acceptAll(t *testing.T) *accepted {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &accepted{Listener: l, seen: make(chan struct{}, 1)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.peers = append(a.peers, c.RemoteAddr().String())
			a.mu.Unlock()
			select {
			case a.seen <- struct{}{}:
			default:
			}
			c.Close()
		}
	}()
	return a
}

// count returns how many connections were accepted before a probe
// connection of its own, which is not counted: the accept queue is in
// order, so every earlier connection has been accepted by then.
func (a *accepted) count(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	probe := c.LocalAddr().String()
	for {
		a.mu.Lock()
		for i, p := range a.peers {
			if p == probe {
				a.peers = append(a.peers[:i], a.peers[i+1:]...)
				n := len(a.peers)
				a.mu.Unlock()
				return n
			}
		}
		a.mu.Unlock()
		select {
		case <-a.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("probe not accepted")
		}
	}
}

func TestGuardDNS(t *testing.T) {
	lo1, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	public := netip.MustParseAddr("93.184.216.34")
	dns := startDNS(t, func(name string, n int) []netip.Addr {
		switch name {
		case "two.test": // one allowed address, one not
			return []netip.Addr{lo1, lo2}
		case "rebind.test", "rebind-allowed.test": // public when checked, loopback when dialled
			if n == 1 {
				return []netip.Addr{public}
			}
			return []netip.Addr{lo1}
		case "rebind-two.test": // allowed when checked; a refused address first when dialled
			if n == 1 {
				return []netip.Addr{lo1}
			}
			return []netip.Addr{lo2, lo1}
		}
		return nil
	})
	srv := acceptAll(t)
	_, port, _ := net.SplitHostPort(srv.Addr().String())

	for _, c := range []struct {
		name    string
		host    string
		allow   []string
		refused netip.Addr // zero: the dial connects
		lookups int        // A queries the dial made, at least
	}{
		// Go's dialler would connect to 127.0.0.1, the first address; a
		// name with any refused address is refused as a whole.
		{"any address refused", "two.test", []string{"127.0.0.1"}, lo2, 1},
		{"every address allowed", "two.test", []string{"127.0.0.0/8"}, netip.Addr{}, 2},
		{"name allowed", "two.test", []string{"two.test"}, netip.Addr{}, 1},
		// The address connected is checked, not only the one looked up
		// first (DNS rebinding).
		{"rebinding", "rebind.test", nil, lo1, 2},
		{"rebinding to an allowed address", "rebind-allowed.test", []string{"127.0.0.1"}, netip.Addr{}, 2},
		// Once one address of a dial is refused, the dialler's fallback to
		// the next one is refused too.
		{"fallback after a refusal", "rebind-two.test", []string{"127.0.0.1"}, lo2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			allow, err := ParseAllow(c.allow)
			if err != nil {
				t.Fatal(err)
			}
			before := srv.count(t)
			q0 := dns.queries(c.host)
			conn, err := guardVia(dns, allow).DialContext(context.Background(), "tcp", net.JoinHostPort(c.host, port))
			if q := dns.queries(c.host) - q0; q < c.lookups {
				t.Fatalf("%d lookups, want at least %d", q, c.lookups)
			}
			after := srv.count(t)
			if !c.refused.IsValid() {
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				if after-before != 1 {
					t.Fatalf("the server saw %d connections, want 1", after-before)
				}
				return
			}
			if conn != nil {
				conn.Close()
			}
			var ae *AddressError
			if !errors.As(err, &ae) || ae.IP != c.refused || ae.Host != c.host {
				t.Fatalf("dial: %v, want %s (of %s) refused", err, c.refused, c.host)
			}
			if after != before {
				t.Fatalf("the server saw %d connections from a refused dial", after-before)
			}
		})
	}
}
