package reply_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"github.com/caddy-webhooks/gateway/reply"
)

// FuzzCheckURL: every accepted URL is https, has no userinfo and a host;
// the host net/http will dial is either an IP address that is public (by
// netip's own predicates) or allowed, or a name that no resolver reads as
// an IPv4 address and that is not localhost unless allowed.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/cb?x=1", "http://hooks.example.com/", "https://u:p@hooks.example.com/",
		"https://127.0.0.1/", "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/",
		"https://169.254.169.254/", "https://10.1.2.3/", "https://[fe80::1%25eth0]/", "https://[64:ff9b::7f00:1]/",
		"https://2130706433/", "https://0x7f.1/", "https://017700000001/", "https://127.1/",
		"https://localhost./", "https://ｌｏｃａｌｈｏｓｔ/", "https://１２７.0.0.1/", "https://bücher.example/",
		"https://a.corp.example:8443/", "https://hooks.internal/", "https://[2606:4700::1111]/", "https:opaque",
	} {
		f.Add(s)
	}
	allow := mustAllow(f, "10.0.0.0/8", "hooks.internal", "*.corp.example")
	ten := netip.MustParsePrefix("10.0.0.0/8")
	f.Fuzz(func(t *testing.T, raw string) {
		for _, a := range []*reply.Allow{nil, allow} {
			u, err := reply.CheckURL(raw, a)
			if err != nil {
				continue
			}
			if u.Scheme != "https" || u.User != nil || u.Hostname() == "" {
				t.Fatalf("accepted %q: scheme %q, user %v, host %q", raw, u.Scheme, u.User, u.Hostname())
			}
			host := u.Hostname()
			if v, err := idna.Lookup.ToASCII(host); err == nil && !isASCIIString(host) {
				host = v // what net/http dials
			}
			if ip, err := netip.ParseAddr(host); err == nil {
				if !a.IP(ip) {
					t.Fatalf("accepted %q: address %s is not allowed", raw, ip)
				}
				plain := ip.Unmap()
				local := ip.Zone() != "" || plain.IsLoopback() || plain.IsPrivate() || plain.IsUnspecified() ||
					plain.IsLinkLocalUnicast() || plain.IsMulticast() || plain.IsLinkLocalMulticast() ||
					plain.IsInterfaceLocalMulticast()
				allowedRange := a == allow && ten.Contains(plain.WithZone(""))
				if local && !allowedRange {
					t.Fatalf("accepted %q: address %s is local", raw, ip)
				}
				continue
			}
			name := strings.ToLower(strings.TrimSuffix(host, "."))
			if inetAton(name) || net.ParseIP(name) != nil {
				t.Fatalf("accepted %q: host %q is an IPv4 address to a resolver", raw, host)
			}
			if (name == "localhost" || strings.HasSuffix(name, ".localhost")) && !a.Name(name) {
				t.Fatalf("accepted %q: localhost", raw)
			}
		}
	})
}

func isASCIIString(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// inetAton reports whether glibc's inet_aton (used by getaddrinfo for
// numeric hosts) reads s as an IPv4 address: one to four parts, each
// decimal, octal (leading 0) or hex (0x), the last filling the rest.
func inetAton(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return false
	}
	for i, p := range parts {
		v, ok := atonPart(p)
		if !ok {
			return false
		}
		max := uint64(255)
		if i == len(parts)-1 {
			max = 1<<(8*(5-len(parts))) - 1
		}
		if v > max {
			return false
		}
	}
	return true
}

func atonPart(p string) (uint64, bool) {
	base, digits := uint64(10), p
	switch {
	case strings.HasPrefix(p, "0x"):
		base, digits = 16, p[2:]
	case strings.HasPrefix(p, "0") && len(p) > 1:
		base, digits = 8, p[1:]
	case p == "":
		return 0, false
	}
	var v uint64
	for i := range len(digits) {
		d := strings.IndexByte("0123456789abcdef", digits[i])
		if d < 0 || uint64(d) >= base {
			return 0, false
		}
		v = v*base + uint64(d)
		if v > 1<<32 {
			return 0, false
		}
	}
	return v, true
}
