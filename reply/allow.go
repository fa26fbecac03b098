// Package reply holds the address rules of request-reply callbacks: which
// callback URLs are accepted, a dialer that connects only to allowed
// addresses, and an HTTP client built on it that never follows redirects.
//
// A callback URL is chosen by whoever sends the webhook, so it is a request
// forgery risk: the gateway must not be made to call its own loopback,
// private networks or a cloud metadata service. CheckURL refuses what is
// visibly wrong early (400); the Guard is the real check, on the address
// actually connected, after DNS resolution, for every connection.
package reply

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// Allow is the set of callback destinations a hook permits beyond public
// addresses. The zero value and nil permit public addresses only.
type Allow struct {
	names    map[string]bool // exact names, canonical
	suffixes []string        // from "*.example.com": ".example.com"
	prefixes []netip.Prefix  // IP literals as /32 or /128, and CIDR ranges
}

// ParseAllow reads patterns: exact host names ("hooks.example.com"),
// "*.example.com" (any subdomain, not the apex), IP literals ("127.0.0.1",
// "::1") and CIDR ranges ("10.0.0.0/8", "fd00::/8"). Names are compared
// case-insensitively, without a trailing dot, internationalised names in
// their ASCII (xn--) form. The error names the bad pattern.
func ParseAllow(patterns []string) (*Allow, error) {
	a := &Allow{names: map[string]bool{}}
	for _, p := range patterns {
		if err := a.add(p); err != nil {
			return nil, fmt.Errorf("allow pattern %q: %w", p, err)
		}
	}
	return a, nil
}

func (a *Allow) add(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	if strings.Contains(p, "/") {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return errors.New("not a CIDR range")
		}
		a.prefixes = append(a.prefixes, unmapPrefix(prefix.Masked()))
		return nil
	}
	if ip, err := netip.ParseAddr(p); err == nil {
		if ip.Zone() != "" {
			return errors.New("an IP address with a zone; give the address or a range without it")
		}
		ip = ip.Unmap()
		a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		name, ok := canonicalName(rest)
		if !ok {
			return errors.New("not a host name pattern (*.example.com)")
		}
		a.suffixes = append(a.suffixes, "."+name)
		return nil
	}
	name, ok := canonicalName(p)
	if !ok {
		return errors.New("not a host name, IP address or CIDR range")
	}
	a.names[name] = true
	return nil
}

// unmapPrefix turns a range of IPv4-mapped IPv6 addresses into the IPv4
// range, since addresses are unmapped before they are compared.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// Name reports whether host, a name, matches an exact or "*." pattern. An IP
// address or something that is not a valid host name never matches. A nil
// Allow matches nothing.
func (a *Allow) Name(host string) bool {
	if a == nil {
		return false
	}
	name, ok := canonicalName(host)
	if !ok {
		return false
	}
	if a.names[name] {
		return true
	}
	for _, s := range a.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// IP reports whether ip (IPv4-mapped addresses unwrapped) is Public or in an
// allowed address or range. A nil Allow allows public addresses only.
func (a *Allow) IP(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	if Public(ip) {
		return true
	}
	if a == nil {
		return false
	}
	// A zone names the interface of a scoped address; the range the user
	// allowed is about the address.
	ip = ip.Unmap().WithZone("")
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// canonicalName returns host as the resolver will be asked for it: the ASCII
// form of an internationalised name (as net/http converts it), lower case,
// without a trailing dot. ok is false when host is not a host name: empty,
// an IP address, characters other than letters, digits, '-' and '_', an empty
// or over-long label, or a last label that is a number ("2130706433",
// "0x7f.1", "127.1"): the C resolver reads those as IPv4 addresses.
func canonicalName(host string) (name string, ok bool) {
	if !isASCII(host) {
		v, err := idnaLookup(host)
		if err != nil {
			return "", false
		}
		host = v
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || len(host) > 253 {
		return "", false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", false
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !validLabel(l) {
			return "", false
		}
	}
	if numericLabel(labels[len(labels)-1]) {
		return "", false
	}
	return host, true
}

// idnaLookup converts an internationalised name as net/http does before it
// dials (idna.Lookup: mapping, lower case, punycode).
func idnaLookup(host string) (string, error) { return idna.Lookup.ToASCII(host) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validLabel: 1 to 63 letters, digits, '-' or '_', not starting or ending
// with '-' (lower case already).
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// numericLabel: decimal or octal digits, or 0x and hex digits, the forms
// inet_aton accepts for a part of an IPv4 address.
func numericLabel(l string) bool {
	digits := l
	hex := false
	if rest, ok := strings.CutPrefix(l, "0x"); ok {
		digits, hex = rest, true
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c >= '0' && c <= '9' || hex && c >= 'a' && c <= 'f' {
			continue
		}
		return false
	}
	return true
}
