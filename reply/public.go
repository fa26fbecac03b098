package reply

import "net/netip"

// notPublic4 are IPv4 ranges that are not globally routable unicast (IANA
// IPv4 Special-Purpose Address Registry, RFC 6890 and successors).
var notPublic4 = prefixes(
	"0.0.0.0/8",       // "this network", including 0.0.0.0 (reaches the local host on Linux)
	"10.0.0.0/8",      // RFC 1918
	"100.64.0.0/10",   // shared address space (CGNAT)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, including the metadata service 169.254.169.254
	"172.16.0.0/12",   // RFC 1918
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // deprecated 6to4 relay anycast
	"192.168.0.0/16",  // RFC 1918
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, including the broadcast 255.255.255.255
)

// global6 is the IPv6 global unicast space; everything outside it (::, ::1,
// IPv4-compatible ::/96, fc00::/7, fe80::/10, fec0::/10, ff00::/8, ...) is not
// public, except the forms that embed an IPv4 address (see embedded4).
var global6 = netip.MustParsePrefix("2000::/3")

// notPublic6 are ranges inside 2000::/3 that are not globally routable.
var notPublic6 = prefixes(
	"2001::/23",     // IETF protocol assignments, including Teredo 2001::/32 (an obscured IPv4 address)
	"2001:db8::/32", // documentation
	"3fff::/20",     // documentation (RFC 9637)
)

// Prefixes of IPv6 forms that carry an IPv4 address.
var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToV4 = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16 to 47
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Public reports whether ip is a globally routable unicast address: not
// loopback, unspecified (0.0.0.0, ::), RFC 1918, CGNAT 100.64/10, link-local
// (169.254/16 including 169.254.169.254, fe80::/10), unique-local fc00::/7,
// multicast, broadcast, documentation, benchmarking or reserved. IPv6 forms
// that embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96,
// 6to4 2002::/16) are judged by the embedded IPv4 address. An address with a
// zone is scoped to an interface and never public.
func Public(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap()
	if v4, ok := embedded4(ip); ok {
		ip = v4
	}
	if ip.Is4() {
		return !inAny(notPublic4, ip)
	}
	return global6.Contains(ip) && !inAny(notPublic6, ip)
}

// embedded4 returns the IPv4 address a NAT64 or 6to4 address carries.
func embedded4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToV4.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
