package forward

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// URLTemplate is a forward URL whose scheme and host are fixed when the
// config loads; placeholders may appear only in the path and query, and
// their values are escaped where they land, so no value can change where
// the request goes.
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
		return nil, fmt.Errorf("url %q needs a scheme (http:// or https://)", redact(raw))
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
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("url %q: invalid host", redact(raw))
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

// Resolve substitutes placeholders with resolve(key); unknown keys stay as
// written. Values are escaped as one path segment in the path and as a
// query value in the query.
func (t *URLTemplate) Resolve(resolve func(key string) (string, bool)) string {
	var b strings.Builder
	b.Grow(len(t.raw) + 32)
	b.WriteString(t.origin)
	write := func(parts []tpart, escape func(string) string) {
		for _, p := range parts {
			if p.key == "" {
				b.WriteString(p.lit)
				continue
			}
			if v, ok := resolve(p.key); ok {
				b.WriteString(escape(v))
				continue
			}
			b.WriteString("{" + p.key + "}")
		}
	}
	write(t.path, escapeSegment)
	if len(t.query) > 0 {
		b.WriteByte('?')
		write(t.query, url.QueryEscape)
	}
	return b.String()
}

// escapeSegment escapes a value as one path segment; "." and ".." are
// escaped too, so a value cannot climb the path.
func escapeSegment(v string) string {
	switch v {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(v)
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
