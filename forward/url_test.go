package forward_test

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/forward"
)

// hostileSegments are path values that must never reach an upstream: each
// one climbs or splits the path on some server once decoded or normalised.
var hostileSegments = []string{
	"", ".", "..", "a/b", "../admin", "/", "a\\b", "..\\admin", "%2e%2e", "%2E%2E", "%2F", "a%2Fb", "%",
	"a\x00b", "a\nb", "a\r\nX-Injected: 1", "\t", "\x7f", "a\u0085b", "\xff\xfe", "a\xc0\xafb",
	"\uff0e\uff0e", "\uff0e", ".\uff0e", "\u2025", "\ufe52\ufe52", "\u2024\u2024", "a\uff0fb", "a\uff3cb", "\u2215admin", "\u2044", "\ufe68",
	"\uff05\uff12\uff45", "...", " ..", ".. ", ". .", "   ", "\u3000", "..;", ".;x", ";", ";x", "..;jsessionid=1", "..\uff1b",
}

func TestResolveRefusesPathValues(t *testing.T) {
	tmpl, err := forward.ParseURL("http://127.0.0.1:8095/api/tenants/{json.tenant}/{json.kind}?q={json.tenant}")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range hostileSegments {
		got, err := tmpl.Resolve(func(k string) (string, bool) {
			if k == "json.tenant" {
				return v, true
			}
			return "admin", true
		})
		var pe *forward.PathValueError
		if !errors.As(err, &pe) || got != "" {
			t.Errorf("tenant %q: got %q, %v; want a *PathValueError and no URL", v, got, err)
			continue
		}
		if pe.Key != "json.tenant" || pe.Reason == "" {
			t.Errorf("tenant %q: error %+v", v, pe)
		}
		if msg := err.Error(); !strings.Contains(msg, "{json.tenant}") || (len(v) > 1 && strings.Contains(msg, v)) {
			t.Errorf("tenant %q: message %q must name the placeholder and not echo the value", v, msg)
		}
	}
}

func TestResolveKeepsPlainSegments(t *testing.T) {
	tmpl, err := forward.ParseURL("http://h.example/t/{v}/x?q={v}")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"acme", ".a", "a.", "a..b", "a b", "?#@:;=&+$,", "a;b", "a;..", "ünïcødé", "\u200b", "-", "~", "'\"<>"} {
		got, err := tmpl.Resolve(func(string) (string, bool) { return v, true })
		if err != nil {
			t.Errorf("%q refused: %v", v, err)
			continue
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Errorf("%q: %q does not parse: %v", v, got, err)
			continue
		}
		if u.Host != "h.example" || u.Path != "/t/"+v+"/x" || u.Query().Get("q") != v {
			t.Errorf("%q: resolved to %q (path %q)", v, got, u.Path)
		}
		if strings.Contains(u.EscapedPath(), ";") {
			t.Errorf("%q: %q keeps a raw ; in the path", v, got)
		}
	}
	// dot segments and separators are fine in the query: a query value is
	// escaped as one and cannot reach the path
	q, _ := forward.ParseURL("http://h.example/p?a={v}")
	for _, v := range []string{"", "..", "a/b", "%2e%2e", "a\nb"} {
		got, err := q.Resolve(func(string) (string, bool) { return v, true })
		u, perr := url.Parse(got)
		if err != nil || perr != nil || u.Path != "/p" || u.Query().Get("a") != v {
			t.Errorf("query value %q: %q, %v, %v", v, got, err, perr)
		}
	}
}

func TestParseURLPort(t *testing.T) {
	for _, bad := range []string{
		"http://localhost:99999/x", "http://localhost:65536/", "http://localhost:0/x", "http://localhost:00/x",
		"http://localhost:/x", "http://[::1]:70000/", "http://[::1]:/", "http://localhost:8o/", "http://localhost:-1/",
		"http://:8080/x", "https://h:4294967377/",
	} {
		if _, err := forward.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "port") && !strings.Contains(err.Error(), "host") {
			t.Errorf("ParseURL(%q): %v does not say what is wrong", bad, err)
		}
	}
	for _, good := range []string{
		"http://localhost:1/", "http://localhost:65535/x", "http://localhost:08080/", "http://[::1]:8080/", "http://[::1]/",
		"https://h.example/", "http://u:p@h.example:80/x",
	} {
		if _, err := forward.ParseURL(good); err != nil {
			t.Errorf("ParseURL(%q): %v", good, err)
		}
	}
}

// TestParseURLErrorsHideCredentials: a URL that does not parse is shown in
// the error without its userinfo or query, even when the password holds a
// character that ends the authority early.
func TestParseURLErrorsHideCredentials(t *testing.T) {
	for _, raw := range []string{
		"http://user:pa/ss-secret1@host:99999/x", "http://user:pa?ss-secret1@host/x", "user:pass-secret1@host/x",
		"http://user:pass-secret1@:80/x", "http://user:pass-secret1@host:0/x", "http://h:99999/x?token=pass-secret1",
		"ftp://user:pass-secret1@host/",
	} {
		_, err := forward.ParseURL(raw)
		if err == nil {
			t.Errorf("%q accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "secret1") || strings.Contains(err.Error(), "user") {
			t.Errorf("%q: error shows a credential: %v", raw, err)
		}
	}
}

// FuzzResolve: whatever the values, an accepted URL keeps its host and its
// number of path segments, each value decodes back to itself, and no
// segment is a dot segment: path.Clean leaves the path as it is.
func FuzzResolve(f *testing.F) {
	for _, v := range hostileSegments {
		f.Add(v, "b")
	}
	for _, v := range []string{"acme", "a b", "ünï", "?#", "@evil.com", ":443", "a;b=c", "\u200b", "\ufeff", "..a", "a;.."} {
		f.Add(v, v)
	}
	tmpl, err := forward.ParseURL("http://h.example/a/{v}/b/{w}?q={v}")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v, w string) {
		got, err := tmpl.Resolve(func(k string) (string, bool) {
			if k == "v" {
				return v, true
			}
			return w, true
		})
		if err != nil {
			var pe *forward.PathValueError
			if !errors.As(err, &pe) || (pe.Key != "v" && pe.Key != "w") || got != "" {
				t.Fatalf("error %v with URL %q", err, got)
			}
			if (pe.Key == "v" && forward.CheckSegment(v) == "") || (pe.Key == "w" && forward.CheckSegment(w) == "") {
				t.Fatalf("refused {%s} whose value passes CheckSegment: %v", pe.Key, err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("%q does not parse: %v", got, err)
		}
		if u.Scheme != "http" || u.Host != "h.example" || u.User != nil || u.Fragment != "" {
			t.Fatalf("destination changed: %q", got)
		}
		for _, p := range []string{u.Path, u.EscapedPath()} {
			segs := strings.Split(p, "/")
			if len(segs) != 5 || segs[1] != "a" || segs[3] != "b" {
				t.Fatalf("segments of %q: %q", got, segs)
			}
			for _, s := range segs[1:] {
				if strings.Trim(s, ". ") == "" || strings.HasPrefix(s, ";") {
					t.Fatalf("dot, space or empty segment in %q", got)
				}
				if before, _, ok := strings.Cut(s, ";"); ok && strings.Trim(before, ". ") == "" {
					t.Fatalf("dot segment before ; in %q", got)
				}
			}
			if path.Clean(p) != p {
				t.Fatalf("path.Clean(%q) = %q", p, path.Clean(p))
			}
		}
		if segs := strings.Split(u.Path, "/"); segs[2] != v || segs[4] != w {
			t.Fatalf("values decode to %q, %q; want %q, %q", segs[2], segs[4], v, w)
		}
		if u.Query().Get("q") != v {
			t.Fatalf("query value %q, want %q", u.Query().Get("q"), v)
		}
	})
}

// BenchmarkResolve: two checked path values and one query value.
func BenchmarkResolve(b *testing.B) {
	tmpl, err := forward.ParseURL("http://127.0.0.1:8095/api/tenants/{t}/{k}?q={t}")
	if err != nil {
		b.Fatal(err)
	}
	vals := map[string]string{"t": "acme-corp-eu", "k": "orders.v2"}
	get := func(k string) (string, bool) { v, ok := vals[k]; return v, ok }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Resolve(get); err != nil {
			b.Fatal(err)
		}
	}
}
