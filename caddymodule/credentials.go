package caddymodule

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-webhooks/gateway/verify"
)

// credentialPlaces lists where the configured auth methods read a
// credential that is sent as is and so would work again if passed on: the
// api_key header or query parameter (Authorization for bearer), the
// Authorization header of basic, and the header of presets whose "signature"
// is the secret itself (gitlab, buildkite_token, okta, cloudflare). Headers
// carrying an HMAC or a public-key signature are not credentials: they are
// bound to the body they sign, and the next handler may want to check them.
func credentialPlaces(auths []AuthConfig) (headers, query []string) {
	addHeader := func(name string) {
		name = http.CanonicalHeaderKey(name)
		if !slices.Contains(headers, name) {
			headers = append(headers, name)
		}
	}
	for _, a := range auths {
		switch a.Method {
		case "basic":
			addHeader("Authorization")
		case "api_key":
			switch {
			case a.Bearer:
				addHeader("Authorization")
			case a.Query != "":
				if !slices.Contains(query, a.Query) {
					query = append(query, a.Query)
				}
			case a.Header != "":
				addHeader(a.Header)
			default:
				addHeader("X-API-Key")
			}
		default:
			p, ok := verify.Lookup(a.Method)
			if ok && p.Algorithm == "token" && p.Extract == nil && p.SignatureHeader != "" {
				addHeader(p.SignatureHeader)
				for _, alias := range p.Aliases {
					addHeader(alias)
				}
			}
		}
	}
	return headers, query
}

// stripCredentials removes the credential headers and query parameters
// from r before it goes to the next handler, in the URL and in the
// RequestURI that placeholders and proxies read.
func stripCredentials(r *http.Request, headers, query []string) {
	for _, name := range headers {
		r.Header.Del(name)
	}
	if len(query) == 0 || r.URL.RawQuery == "" {
		return
	}
	rawQuery, changed := dropQueryParams(r.URL.RawQuery, query)
	if !changed {
		return
	}
	r.URL.RawQuery = rawQuery
	if r.RequestURI != "" {
		uri, _, _ := strings.Cut(r.RequestURI, "?")
		if rawQuery != "" {
			uri += "?" + rawQuery
		}
		r.RequestURI = uri
	}
}

// dropQueryParams removes every pair of rawQuery named one of names, and
// keeps the other pairs byte for byte. A pair is read as url.ParseQuery
// reads it (split on "&", the name unescaped); a pair whose ";"-separated
// parts name a credential is dropped too, for servers that split on ";".
func dropQueryParams(rawQuery string, names []string) (string, bool) {
	var b strings.Builder
	changed := false
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if namesCredential(pair, names) {
			changed = true
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	if !changed {
		return rawQuery, false
	}
	return b.String(), true
}

func namesCredential(pair string, names []string) bool {
	for part := range strings.SplitSeq(pair, ";") {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if slices.Contains(names, name) {
			return true
		}
	}
	return false
}
