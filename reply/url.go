package reply

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLBytes bounds a callback URL.
const MaxURLBytes = 2048

// URLError says which rule a callback URL broke. Its message is meant for the
// sender (a 400 body) and holds no secret.
type URLError struct{ Rule string }

func (e *URLError) Error() string { return e.Rule }

func urlError(format string, args ...any) error {
	return &URLError{Rule: fmt.Sprintf(format, args...)}
}

// CheckURL validates a callback URL before anything is stored: present, at
// most MaxURLBytes, parseable, https, without userinfo, with a host and a
// valid port. A host that is an IP address (also an internationalised form
// that maps to one, "１２７.0.0.1") must be allowed by allow.IP; a host name
// must be a valid name (the numeric forms "2130706433", "0x7f.1", "127.1"
// are refused: resolvers read them as IPv4 addresses), and "localhost" or
// "*.localhost" only when allow.Name says so. Other names are accepted here:
// their addresses are checked when dialling (Guard).
func CheckURL(raw string, allow *Allow) (*url.URL, error) {
	if raw == "" {
		return nil, urlError("callback URL is missing")
	}
	if len(raw) > MaxURLBytes {
		return nil, urlError("callback URL is longer than %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, urlError("callback URL is not a valid URL")
	}
	if u.Scheme != "https" {
		return nil, urlError("callback URL must use https://")
	}
	if u.User != nil {
		return nil, urlError("callback URL must not contain user information (user:password@)")
	}
	if u.Hostname() == "" {
		return nil, urlError("callback URL has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, urlError("callback URL has an invalid port")
		}
	}
	ip, name, ok := dialHost(u.Hostname())
	switch {
	case !ok:
		return nil, urlError("callback host %q is not a valid host name or IP address", u.Hostname())
	case ip.IsValid():
		if !allow.IP(ip) {
			return nil, urlError("callback host %s is not a public address and not allowed", ip)
		}
	case (name == "localhost" || strings.HasSuffix(name, ".localhost")) && !allow.Name(name):
		return nil, urlError("callback host %s is not allowed", name)
	}
	return u, nil
}

// dialHost reads a URL's host as net/http will dial it: an IP address, or a
// name in canonical form. ok is false when it is neither.
func dialHost(host string) (ip netip.Addr, name string, ok bool) {
	ascii := host
	if !isASCII(host) {
		// net/http converts the host this way before it dials; a form that
		// maps to an IP address is judged as that address.
		v, err := idnaLookup(host)
		if err != nil {
			return netip.Addr{}, "", false
		}
		ascii = v
	}
	if ip, err := netip.ParseAddr(ascii); err == nil {
		return ip, "", true
	}
	name, ok = canonicalName(ascii)
	return netip.Addr{}, name, ok
}

// WithID returns the callback URL with id=<secret> added to its query. The
// existing query is kept as it was written (order and encoding); an existing
// "id" parameter is replaced.
func WithID(callback, secret string) (string, error) {
	if secret == "" {
		return "", errors.New("callback secret id is empty")
	}
	u, err := url.Parse(callback)
	if err != nil {
		return "", &URLError{Rule: "callback URL is not a valid URL"}
	}
	var kept []string
	if u.RawQuery != "" {
		for _, part := range strings.Split(u.RawQuery, "&") {
			key, _, _ := strings.Cut(part, "=")
			if k, err := url.QueryUnescape(key); err == nil && k == "id" {
				continue
			}
			if part != "" {
				kept = append(kept, part)
			}
		}
	}
	kept = append(kept, "id="+url.QueryEscape(secret))
	u.RawQuery = strings.Join(kept, "&")
	u.ForceQuery = false
	return u.String(), nil
}

// NewSecret returns a random 128-bit secret id as 32 lowercase hex characters.
func NewSecret() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("callback secret id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
