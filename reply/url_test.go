package reply_test

import (
	"encoding/hex"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/reply"
)

// Messages of CheckURL's rules, as the sender reads them in a 400.
const (
	ruleMissing  = "callback URL is missing"
	ruleTooLong  = "callback URL is longer than 2048 bytes"
	ruleParse    = "callback URL is not a valid URL"
	ruleHTTPS    = "callback URL must use https://"
	ruleUserinfo = "callback URL must not contain user information"
	ruleNoHost   = "callback URL has no host"
	rulePort     = "callback URL has an invalid port"
	ruleInvalid  = "is not a valid host name or IP address"
	rulePrivate  = "is not a public address and not allowed"
	ruleLocal    = "is not allowed"
)

func TestCheckURLRefuses(t *testing.T) {
	long := "https://hooks.example.com/" + strings.Repeat("a", 2048-len("https://hooks.example.com/")+1)
	for _, c := range []struct {
		raw, rule string
	}{
		{"", ruleMissing},
		{long, ruleTooLong},
		{"https://exa mple.com/", ruleParse},
		{"https://[::1/", ruleParse},
		{"https://example.com:44x/", ruleParse},
		{"http://hooks.example.com/cb", ruleHTTPS},
		{"HTTP://hooks.example.com/cb", ruleHTTPS},
		{"ftp://hooks.example.com/cb", ruleHTTPS},
		{"//hooks.example.com/cb", ruleHTTPS},
		{"hooks.example.com/cb", ruleHTTPS},
		{"wss://hooks.example.com/cb", ruleHTTPS},
		{"https://user:pass@hooks.example.com/cb", ruleUserinfo},
		{"https://user@hooks.example.com/cb", ruleUserinfo},
		{"https://@hooks.example.com/cb", ruleUserinfo},
		{"https://hooks.example.com@127.0.0.1/cb", ruleUserinfo},
		{"https:///cb", ruleNoHost},
		{"https://:443/cb", ruleNoHost},
		{"https:opaque", ruleNoHost},
		{"https://hooks.example.com:0/cb", rulePort},
		{"https://hooks.example.com:65536/cb", rulePort},
		{"https://hooks.example.com:99999999999999999999/cb", rulePort},
		// Names that are not names: resolvers read the numeric forms as
		// IPv4 addresses (all of these are 127.0.0.1 to inet_aton).
		{"https://2130706433/", ruleInvalid},
		{"https://0x7f.1/", ruleInvalid},
		{"https://0X7F.1/", ruleInvalid},
		{"https://017700000001/", ruleInvalid},
		{"https://0x7f000001/", ruleInvalid},
		{"https://127.1/", ruleInvalid},
		{"https://0177.0.0.1/", ruleInvalid},
		{"https://127.000.000.001/", ruleInvalid},
		{"https://127.0.0.1./", ruleInvalid},
		{"https://1.2.3.4.5/", ruleInvalid},
		{"https://exa$mple.com/", ruleInvalid},
		{"https://a..example.com/", ruleInvalid},
		{"https://-x.example.com/", ruleInvalid},
		{"https://" + strings.Repeat("a", 64) + ".example.com/", ruleInvalid},
		// IP literals that are not public.
		{"https://10.0.0.1/", rulePrivate},
		{"https://172.16.0.1/", rulePrivate},
		{"https://192.168.1.1/", rulePrivate},
		{"https://100.64.0.1/", rulePrivate},
		{"https://127.0.0.1:8443/", rulePrivate},
		{"https://169.254.169.254/latest/meta-data/", rulePrivate},
		{"https://0.0.0.0/", rulePrivate},
		{"https://[::]/", rulePrivate},
		{"https://[::1]/", rulePrivate},
		{"https://[::1]:8443/", rulePrivate},
		{"https://[::ffff:127.0.0.1]/", rulePrivate},
		{"https://[::ffff:7f00:1]/", rulePrivate},
		{"https://[::ffff:169.254.169.254]/", rulePrivate},
		{"https://[::ffff:10.0.0.1]/", rulePrivate},
		{"https://[fd00::1]/", rulePrivate},
		{"https://[fc00::1]/", rulePrivate},
		{"https://[fe80::1%25eth0]/", rulePrivate},
		{"https://[64:ff9b::7f00:1]/", rulePrivate},
		{"https://[64:ff9b::a9fe:a9fe]/", rulePrivate},
		{"https://[2002:7f00:1::]/", rulePrivate},
		{"https://[2002:a9fe:a9fe::1]/", rulePrivate},
		{"https://１２７.0.0.1/", rulePrivate},     // net/http maps fullwidth digits and dials 127.0.0.1
		{"https://%31%32%37.0.0.1/", ruleParse}, // percent-encoded ASCII in a host: net/url refuses it
		// localhost by name.
		{"https://localhost/", ruleLocal},
		{"https://LOCALHOST:8443/", ruleLocal},
		{"https://localhost./", ruleLocal},
		{"https://api.localhost/", ruleLocal},
		{"https://ｌｏｃａｌｈｏｓｔ/", ruleLocal}, // net/http dials it as "localhost"
		{"https://localhost。/", ruleLocal},
	} {
		_, err := reply.CheckURL(c.raw, nil)
		var ue *reply.URLError
		if !errors.As(err, &ue) {
			t.Errorf("CheckURL(%q) = %v, want a *URLError", c.raw, err)
			continue
		}
		if !strings.Contains(ue.Error(), c.rule) || ue.Error() != ue.Rule {
			t.Errorf("CheckURL(%q) = %q, want %q", c.raw, ue.Error(), c.rule)
		}
	}
}

// Each address or name refused above passes when allow names it, so the
// refusal is the address rule's.
func TestCheckURLAllowed(t *testing.T) {
	for _, c := range []struct {
		raw   string
		allow []string
	}{
		{"https://hooks.example.com/cb?x=1", nil},
		{"HTTPS://Hooks.Example.COM:8443/cb", nil},
		{"https://hooks.example.com./cb", nil},
		{"https://internal.corp/cb", nil}, // a name: judged when dialled
		{"https://0x7f.example.com/", nil},
		{"https://a_b.example.com/", nil},
		{"https://bücher.example/", nil},
		{"https://8.8.8.8/", nil},
		{"https://[2606:4700::1111]:443/", nil},
		{"https://[::ffff:8.8.8.8]/", nil},
		{"https://hooks.example.com:65535/", nil},
		{"https://10.0.0.1/", []string{"10.0.0.0/8"}},
		{"https://172.16.0.1/", []string{"172.16.0.0/12"}},
		{"https://192.168.1.1/", []string{"192.168.1.1"}},
		{"https://100.64.0.1/", []string{"100.64.0.0/10"}},
		{"https://127.0.0.1:8443/", []string{"127.0.0.1"}},
		{"https://169.254.169.254/", []string{"169.254.169.254"}},
		{"https://0.0.0.0/", []string{"0.0.0.0"}},
		{"https://[::]/", []string{"::"}},
		{"https://[::1]:8443/", []string{"::1"}},
		{"https://[::ffff:127.0.0.1]/", []string{"127.0.0.1"}},
		{"https://[fd00::1]/", []string{"fd00::/8"}},
		{"https://[fe80::1%25eth0]/", []string{"fe80::/10"}},
		{"https://[64:ff9b::7f00:1]/", []string{"64:ff9b::/96"}},
		{"https://１２７.0.0.1/", []string{"127.0.0.1"}},
		{"https://localhost/", []string{"localhost"}},
		{"https://LOCALHOST.:8443/", []string{"localhost"}},
		{"https://api.localhost/", []string{"*.localhost"}},
	} {
		u, err := reply.CheckURL(c.raw, mustAllow(t, c.allow...))
		if err != nil {
			t.Errorf("CheckURL(%q, allow %v) = %v", c.raw, c.allow, err)
			continue
		}
		if u.Scheme != "https" {
			t.Errorf("CheckURL(%q) scheme %q", c.raw, u.Scheme)
		}
	}
	// "*.localhost" is not the apex, and an address is not a name.
	if _, err := reply.CheckURL("https://localhost/", mustAllow(t, "*.localhost", "127.0.0.1")); err == nil {
		t.Error("localhost accepted by *.localhost and 127.0.0.1")
	}
}

func TestWithID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct{ in, want string }{
		{"https://a.example/cb", "https://a.example/cb?id=" + id},
		{"https://a.example/cb?b=2&a=1", "https://a.example/cb?b=2&a=1&id=" + id},
		{"https://a.example/cb?id=old&x=%2F+y", "https://a.example/cb?x=%2F+y&id=" + id},
		{"https://a.example/cb?i%64=old&id=older&z", "https://a.example/cb?z&id=" + id},
		{"https://a.example/cb?ID=kept", "https://a.example/cb?ID=kept&id=" + id},
		{"https://a.example/cb?", "https://a.example/cb?id=" + id},
		{"https://a.example/cb?x=1#frag", "https://a.example/cb?x=1&id=" + id + "#frag"},
		{"https://a.example:8443/p/a%2Fth?x=1", "https://a.example:8443/p/a%2Fth?x=1&id=" + id},
	} {
		got, err := reply.WithID(c.in, id)
		if err != nil {
			t.Errorf("WithID(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("WithID(%q) = %q, want %q", c.in, got, c.want)
		}
		u, err := url.Parse(got)
		if err != nil || len(u.Query()["id"]) != 1 || u.Query().Get("id") != id {
			t.Errorf("WithID(%q) = %q: want exactly one id=%s", c.in, got, id)
		}
	}
	if _, err := reply.WithID("https://a.example/cb", ""); err == nil {
		t.Error("WithID accepted an empty secret")
	}
	if _, err := reply.WithID("https://[::1/", id); err == nil {
		t.Error("WithID accepted an unparseable URL")
	}
}

func TestNewSecret(t *testing.T) {
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	var digits [32]map[byte]bool
	for i := range digits {
		digits[i] = map[byte]bool{}
	}
	for range 1000 {
		s, err := reply.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !hex32.MatchString(s) {
			t.Fatalf("NewSecret() = %q, want 32 lowercase hex characters", s)
		}
		if b, err := hex.DecodeString(s); err != nil || len(b) != 16 {
			t.Fatalf("NewSecret() = %q: not 128 bits", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret() repeated %q", s)
		}
		seen[s] = true
		for i := range s {
			digits[i][s[i]] = true
		}
	}
	// Every position varies: no constant prefix, no counter.
	for i, d := range digits {
		if len(d) < 8 {
			t.Errorf("position %d took only %d values over 1000 secrets", i, len(d))
		}
	}
}
