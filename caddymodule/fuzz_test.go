package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile: any token stream gives a config or an error,
// never a panic.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"webhook_gateway",
		"webhook_gateway {\n auth github s\n}",
		"webhook_gateway {\n auth hmac a b {\n  header X\n  signed \"{timestamp}.{body}\"\n  tolerance 1m\n }\n}",
		"webhook_gateway {\n reshape keep {\n  set a.b {json.c} required\n  delete d\n }\n}",
		"webhook_gateway {\n forward http://x/{json.y} {\n  retries 2\n  backoff 1s 2s\n  sign hmac s {\n   header X\n  }\n }\n}",
		"webhook_gateway {\n max_size 1MB\n methods POST PUT\n content_type application/*+json\n form_payload\n}",
		"webhook_gateway {\n auth api_key k {\n  query q\n }\n id_from {header.X}\n mode sync\n deadline 2s\n}",
		"webhook_gateway {\n auth api_key k {\n  bearer\n }\n pass_credentials\n}",
		"webhook_gateway {\n forward http://localhost:99999/{json.t}/{json.k} {\n  retries 0\n }\n}",
		"webhook_gateway {\n forward http://[::1]:/a/{http.webhook_gateway.json..}?q={json.%2e} {\n  header X {json.\\r\\n}\n }\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		if !strings.HasPrefix(input, "webhook_gateway") {
			input = "webhook_gateway " + input
		}
		_ = new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}

// FuzzContentType: matching never panics, and an accepted type is one of
// the configured ranges.
func FuzzContentType(f *testing.F) {
	for _, seed := range []string{
		"application/json", "application/json; charset=utf-8", "application/vnd.x+json",
		"APPLICATION/JSON;CHARSET=\"UTF-8\"", "application/x-www-form-urlencoded", "text/json", ";;", "/", "a/b/c",
	} {
		f.Add(seed)
	}
	h := &Handler{FormPayload: true}
	var err error
	h.accepted, err = parseMediaRanges([]string{"application/json", "application/*+json"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		form, ok := h.acceptContentType(header)
		if !ok {
			return
		}
		typ, sub, _, valid := splitMediaType(header)
		if !valid || typ != "application" {
			t.Fatalf("accepted %q (type %q)", header, typ)
		}
		if !form && sub != "json" && !strings.HasSuffix(sub, "+json") {
			t.Fatalf("accepted %q as JSON", header)
		}
	})
}

// FuzzFormPayload: decoding a form body never panics; a payload it returns
// was in the body.
func FuzzFormPayload(f *testing.F) {
	for _, seed := range []string{"payload=%7B%7D", "payload={\"a\":1}&x=y", "payload=", "payload=1&payload=2", "%zz", "a=b", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := formPayload(body)
		if err == nil && len(doc) > len(body) {
			t.Fatalf("payload longer than the body")
		}
	})
}

// FuzzCheckJSON: validation never panics and agrees with encoding/json,
// an independent validator, on what is JSON (given UTF-8 and the depth
// bound).
func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `[1,"a",null]`, `{"a":`, "\xef\xbb\xbf{}", `{"a":1} x`, strings.Repeat("[", 1000), `"\ud800"`, `1e999`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		err := checkJSON(doc)
		std := json.Valid(doc) && utf8.Valid(doc)
		if err == nil && !std {
			t.Fatalf("accepted %q, which encoding/json refuses", doc)
		}
		if _, shallow := depthWithin(doc, maxJSONDepth); err != nil && std && shallow {
			t.Fatalf("refused %q (%v), which encoding/json accepts", doc, err)
		}
	})
}
