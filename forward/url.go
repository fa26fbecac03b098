package forward

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// URLTemplate is a forward URL whose scheme and host are fixed when the
// config loads; placeholders may appear only in the path and query. A
// path value must be one plain segment and is escaped as one, a query
// value is escaped as one, so no value can change where the request goes.
type URLTemplate struct {
	raw    string
	origin string // scheme://host[:port], fixed
	path   []tpart
	query  []tpart
}

type tpart struct {
	lit string
	key string
}

// ParseURL parses a forward URL (env placeholders already resolved). Only
// http and https are allowed; a placeholder in the scheme, userinfo, host
// or port is an error.
func ParseURL(raw string) (*URLTemplate, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("url %q needs a scheme (http:// or https://)", redactBroken(raw))
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("url scheme %q not supported (want http or https)", scheme)
	}
	authority, pathQuery := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, pathQuery = rest[:i], rest[i:]
	}
	if strings.ContainsAny(authority, "{}") {
		return nil, errors.New("url: placeholders are not allowed in the host, port or userinfo")
	}
	if authority == "" {
		return nil, errors.New("url has no host")
	}
	u, err := url.Parse(scheme + "://" + authority)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("url %q: invalid host", redactBroken(raw))
	}
	if err := checkPort(u.Host); err != nil {
		return nil, fmt.Errorf("url %q: %w", redactBroken(raw), err)
	}
	if strings.Contains(pathQuery, "#") {
		pathQuery, _, _ = strings.Cut(pathQuery, "#")
	}
	path, query, _ := strings.Cut(pathQuery, "?")
	if path == "" {
		path = "/"
	}
	t := &URLTemplate{raw: raw, origin: scheme + "://" + authority}
	t.path = splitTemplate(path)
	t.query = splitTemplate(query)
	return t, nil
}

// checkPort accepts a host without a port, or with a decimal port in
// 1-65535 (url.Parse takes any digits, and an empty port).
func checkPort(host string) error {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.HasSuffix(host, "]") {
		return nil // no port ("[::1]" has colons but no port)
	}
	port := host[i+1:]
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
		return fmt.Errorf("invalid port %q (want 1-65535)", port)
	}
	return nil
}

// redactBroken is redact for a URL that did not parse, whose authority
// cannot be told from its path (a password holding "/" or "?"): it drops
// the query and everything up to the last "@".
func redactBroken(raw string) string {
	s, _, _ := strings.Cut(raw, "#")
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		scheme, _, ok := strings.Cut(s, "://")
		s = s[at+1:]
		if ok {
			s = scheme + "://" + s
		}
	}
	s, _, _ = strings.Cut(s, "?")
	return s
}

// redact drops userinfo and query from a URL for error messages.
func redact(raw string) string {
	s, _, _ := strings.Cut(raw, "?")
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		host := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			host = rest[:i]
		}
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	return s
}

func splitTemplate(s string) []tpart {
	var parts []tpart
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			parts = append(parts, tpart{lit: s})
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			parts = append(parts, tpart{lit: s})
			break
		}
		if i > 0 {
			parts = append(parts, tpart{lit: s[:i]})
		}
		parts = append(parts, tpart{key: s[i+1 : i+end]})
		s = s[i+end+1:]
	}
	return parts
}

// PathValueError is a placeholder value Resolve refuses to put in the
// path: empty, "." or "..", or holding a character that some upstream or
// proxy reads as a path separator, an escape or a line break. Escaping is
// not enough for these: servers that decode and clean a path (RFC 3986
// treats %2E as ".") would still climb it.
type PathValueError struct {
	Key    string // the placeholder, without braces
	Reason string // what is wrong with its value; never the value itself
}

func (e *PathValueError) Error() string {
	return "url path placeholder {" + e.Key + "}: value " + e.Reason
}

// Resolve substitutes placeholders with resolve(key); unknown keys stay as
// written. A value in the query is escaped as a query value. A value in
// the path must be a plain path segment (see CheckSegment) and is then
// escaped as one; otherwise Resolve returns a *PathValueError and no URL.
func (t *URLTemplate) Resolve(resolve func(key string) (string, bool)) (string, error) {
	var b strings.Builder
	b.Grow(len(t.raw) + 32)
	b.WriteString(t.origin)
	for _, p := range t.path {
		if p.key == "" {
			b.WriteString(p.lit)
			continue
		}
		v, ok := resolve(p.key)
		if !ok {
			b.WriteString("{" + p.key + "}")
			continue
		}
		if reason := CheckSegment(v); reason != "" {
			return "", &PathValueError{Key: p.key, Reason: reason}
		}
		// ";" escaped too: some servers cut a segment there
		b.WriteString(strings.ReplaceAll(url.PathEscape(v), ";", "%3B"))
	}
	if len(t.query) > 0 {
		b.WriteByte('?')
		for _, p := range t.query {
			if p.key == "" {
				b.WriteString(p.lit)
				continue
			}
			if v, ok := resolve(p.key); ok {
				b.WriteString(url.QueryEscape(v))
				continue
			}
			b.WriteString("{" + p.key + "}")
		}
	}
	return b.String(), nil
}

// CheckSegment returns why v cannot be a path segment, or "" if it can:
// it must not be empty, "." or "..", and must not hold "/", "\\", "%", a
// control character or invalid UTF-8. Characters that Unicode
// normalisation (NFKC) or Windows best-fit mapping turn into one of those
// are refused too, and so are values made only of dots and spaces
// (Windows drops trailing dots and spaces from a name) and values whose
// part before a ";" is empty or dots (servers such as Tomcat cut a
// segment at ";" before they resolve dot segments), since some servers
// normalise a path before they route it.
func CheckSegment(v string) string {
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	plain := false // holds a character other than a dot or a space
	for _, r := range v {
		switch r {
		case '/', '\\', '\uff0f', '\uff3c', '\ufe68', '\u2215', '\u2044', '\u29f8', '\u29f9':
			return "contains a path separator"
		case '%', '\uff05', '\ufe6a':
			return "contains %"
		case '.', '\uff0e', '\ufe52', '\u2024', '\u2025', ' ', '\u3000':
		default:
			if unicode.IsControl(r) {
				return "contains a control character"
			}
			plain = true
		}
	}
	switch {
	case v == "":
		return "is empty"
	case !plain:
		return "is a dot segment"
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return r == ';' || r == '\uff1b' }); i >= 0 && CheckSegment(v[:i]) != "" {
		return "is a dot segment before ;"
	}
	return ""
}

// String returns the configured template without userinfo or query.
func (t *URLTemplate) String() string { return redact(t.raw) }

// Keys lists the placeholders of the path and query, in order, each once.
func (t *URLTemplate) Keys() []string {
	var keys []string
	for _, parts := range [][]tpart{t.path, t.query} {
		for _, p := range parts {
			if p.key != "" && !slices.Contains(keys, p.key) {
				keys = append(keys, p.key)
			}
		}
	}
	return keys
}
