package reply_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/reply"
)

func TestPublic(t *testing.T) {
	public := []string{
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "223.255.255.255",
		"100.63.255.255", "100.128.0.0", // just outside CGNAT
		"172.15.255.255", "172.32.0.0", // just outside 172.16/12
		"169.253.255.255", "169.255.0.0", // just outside link-local
		"192.0.1.1", "198.17.255.255", "198.20.0.0", "11.0.0.1",
		"2606:4700::1111", "2a00:1450:4001::1", "2001:4860:4860::8888",
		"::ffff:8.8.8.8",     // IPv4-mapped public
		"64:ff9b::808:808",   // NAT64 of 8.8.8.8
		"2002:808:808::1",    // 6to4 of 8.8.8.8
		"2001:200::1",        // outside 2001::/23
		"3fff:1000::1",       // outside 3fff::/20
		"2620:4f:8000::1",    // AS112, globally reachable
		"2400:cb00:2048:1::", // a CDN
	}
	notPublic := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255",
		"100.64.0.1", "100.127.255.255",
		"127.0.0.1", "127.255.255.254",
		"169.254.169.254", "169.254.0.1",
		"172.16.0.1", "172.31.255.255",
		"192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.1.1",
		"198.18.0.1", "198.19.255.255", "198.51.100.1", "203.0.113.1",
		"224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::127.0.0.1", "::8.8.8.8", // IPv4-compatible (deprecated), outside 2000::/3
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", // NAT64 of loopback, metadata, RFC 1918
		"64:ff9b:1::808:808",                                            // local-use NAT64
		"2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:a00:1::1", "2002::", // 6to4 of loopback, metadata, RFC 1918, 0.0.0.0
		"fc00::1", "fd00::1", "fd00:ec2::254", // unique-local, including the AWS metadata address
		"fe80::1", "fe80::1%eth0", "fec0::1", // link-local, site-local
		"ff02::1", "ff0e::1", // multicast
		"2001:db8::1", "2001::1", "2001:10::1", "3fff::1", // documentation, Teredo, ORCHID, documentation
		"100::1",               // discard-only
		"2606:4700::1111%eth0", // a zone makes any address scoped
	}
	for _, s := range public {
		if !reply.Public(netip.MustParseAddr(s)) {
			t.Errorf("Public(%s) = false, want true", s)
		}
	}
	for _, s := range notPublic {
		if reply.Public(netip.MustParseAddr(s)) {
			t.Errorf("Public(%s) = true, want false", s)
		}
	}
	if reply.Public(netip.Addr{}) {
		t.Error("Public(invalid) = true")
	}
}

func TestParseAllowRefuses(t *testing.T) {
	for _, p := range []string{
		"", "*", "*.", "**.example.com", "*.*.example.com", "exa mple.com", "exa$mple.com", "-bad.example",
		"bad-.example", "a..b", "http://x.example", "x.example:443",
		"10.0.0.0/33", "10.0.0.0/x", "example.com/8", "fe80::1%eth0",
		"2130706433", "0x7f.1", "127.1", "017700000001", "127.0.0.1.", "1.2.3.4.5",
		strings.Repeat("a", 64) + ".example",
	} {
		_, err := reply.ParseAllow([]string{"hooks.example.com", p})
		if err == nil {
			t.Errorf("ParseAllow(%q) accepted", p)
			continue
		}
		if !strings.Contains(err.Error(), strings.TrimSpace(quote(p))) {
			t.Errorf("ParseAllow(%q) error %q does not name the pattern", p, err)
		}
	}
	// The same list without the bad pattern parses, so each refusal above
	// is the pattern's.
	if _, err := reply.ParseAllow([]string{"hooks.example.com"}); err != nil {
		t.Fatal(err)
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

func mustAllow(t testing.TB, patterns ...string) *reply.Allow {
	t.Helper()
	a, err := reply.ParseAllow(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAllowName(t *testing.T) {
	a := mustAllow(t, "hooks.example.com", "*.corp.example", "Bücher.example", "localhost.", "a_b.example")
	for _, c := range []struct {
		host string
		want bool
	}{
		{"hooks.example.com", true},
		{"HOOKS.Example.COM.", true},
		{"a.hooks.example.com", false},
		{"example.com", false},
		{"hooks.example.com.evil.test", false},
		{"x.corp.example", true},
		{"a.b.corp.example", true},
		{"X.CORP.EXAMPLE.", true},
		{"corp.example", false}, // not the apex
		{"xcorp.example", false},
		{"xn--bcher-kva.example", true},
		{"bücher.example", true},
		{"BÜCHER.example", true},
		{"localhost", true},
		{"LOCALHOST.", true},
		{"ｌｏｃａｌｈｏｓｔ", true}, // net/http dials it as "localhost"
		{"a_b.example", true},
		{"127.0.0.1", false},
		{"", false},
		{"hooks.example.com..", false},
	} {
		if got := a.Name(c.host); got != c.want {
			t.Errorf("Name(%q) = %v, want %v", c.host, got, c.want)
		}
	}
	var none *reply.Allow
	if none.Name("hooks.example.com") {
		t.Error("nil Allow matched a name")
	}
	if mustAllow(t, "127.0.0.1", "10.0.0.0/8").Name("localhost") {
		t.Error("IP patterns matched a name")
	}
}

func TestAllowIP(t *testing.T) {
	a := mustAllow(t, "10.0.0.0/8", "127.0.0.1", "fd00::/8", "::ffff:192.168.0.0/112", "fe80::/10", "203.0.113.9/24")
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true}, // public
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true}, // mapped, unwrapped
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"127.0.0.2", false},
		{"::1", false},
		{"fd12::1", true},
		{"fc00::1", false},
		{"192.168.5.5", true}, // the mapped range, as IPv4
		{"172.16.0.1", false},
		{"169.254.169.254", false},
		{"fe80::1%eth0", true},
		{"203.0.113.200", true}, // a CIDR with host bits set is masked
		{"0.0.0.0", false},
	} {
		if got := a.IP(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("IP(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	var none *reply.Allow
	if none.IP(netip.MustParseAddr("10.1.2.3")) || !none.IP(netip.MustParseAddr("8.8.8.8")) {
		t.Error("nil Allow: want public addresses only")
	}
	if mustAllow(t, "*.example.com").IP(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a name pattern allowed an address")
	}
}
