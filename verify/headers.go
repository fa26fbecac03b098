package verify

import (
	"net/http"
	"slices"
	"strings"
)

// Headers lists the request headers the verifier of s reads (canonical
// form, each once): where credentials, signatures and signed timestamps
// arrive, so that a log of the request can redact them. Content-Type,
// which some schemes read to find their fields, is not listed; nor is
// anything read from the body or the query.
func Headers(s Spec) []string {
	var out []string
	add := func(name string) {
		if name == "" || strings.HasPrefix(name, "body:") {
			return
		}
		name = http.CanonicalHeaderKey(name)
		if name != "Content-Type" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	switch s.Method {
	case "basic":
		add("Authorization")
		return out
	case "api_key":
		switch {
		case s.Bearer:
			add("Authorization")
		case s.Query != "":
		case s.Header != "":
			add(s.Header)
		default:
			add("X-API-Key")
		}
		return out
	case "hmac":
		add(s.Header)
		add(s.TimestampHeader)
		for _, name := range signedHeaders(s.Signed) {
			add(name)
		}
		return out
	}
	p, ok := presets[s.Method]
	if !ok {
		return nil
	}
	add(p.SignatureHeader)
	add(p.TimestampHeader)
	for _, name := range signedHeaders(p.Signed) {
		add(name)
	}
	for _, name := range p.ExtraHeaders {
		add(name)
	}
	for name, alias := range p.Aliases {
		add(name)
		add(alias)
	}
	slices.Sort(out) // aliases come from a map: a stable order
	return out
}

// signedHeaders lists the {header.<Name>} parts of a signed template.
func signedHeaders(t string) []string {
	var names []string
	for {
		i := strings.Index(t, "{header.")
		if i < 0 {
			return names
		}
		t = t[i+len("{header."):]
		end := strings.IndexByte(t, '}')
		if end < 0 {
			return names
		}
		names = append(names, t[:end])
		t = t[end+1:]
	}
}
