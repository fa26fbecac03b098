package reply_test

import (
	"net/netip"
	"testing"

	"github.com/caddy-webhooks/gateway/reply"
)

func BenchmarkCheckURL(b *testing.B) {
	allow := mustAllow(b, "*.corp.example", "10.0.0.0/8", "hooks.internal")
	for _, c := range []struct{ name, url string }{
		{"name", "https://hooks.example.com/cb?x=1"},
		{"ipv6", "https://[2606:4700::1111]:8443/cb"},
		{"idna", "https://bücher.example/cb"},
	} {
		u := c.url
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := reply.CheckURL(u, allow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAllowIP(b *testing.B) {
	allow := mustAllow(b, "10.0.0.0/8", "fd00::/8", "127.0.0.1")
	ip := netip.MustParseAddr("64:ff9b::a9fe:a9fe")
	for b.Loop() {
		if allow.IP(ip) {
			b.Fatal("allowed")
		}
	}
}
