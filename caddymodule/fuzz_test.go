package caddymodule

import (
	"encoding/json"
	"errors"
	"mime"
	"net/url"
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

// FuzzContentType: matching never panics and agrees with
// mime.ParseMediaType, an independent parser: an accepted header is one
// it reads as application/json, application/<x>+json or the form type,
// with no charset other than UTF-8; and a header it reads cleanly as one
// of those is accepted.
func FuzzContentType(f *testing.F) {
	for _, seed := range []string{
		"application/json", "application/json; charset=utf-8", "application/vnd.x+json",
		"APPLICATION/JSON;CHARSET=\"UTF-8\"", "application/x-www-form-urlencoded", "text/json", ";;", "/", "a/b/c",
		"application/json; charset=latin1", "application/+json", "application/json ; charset=UTF8",
		"application/json; charset=utf-8; charset=utf-8", "application/json;;", "application/json; foo",
		"application/json;charset=\"utf-8", "application/json\x00", "application/json; charset=", "application/json;charset=utf-8;x=\"", "application/x-www-form-urlencoded;charset=utf-8", "\u00e9pplication/json", "application/json\t", "application /json", "application/\xffjson", "application/vnd(x+json", "application/vnd x+json", "application/vnd@x+json",
	} {
		f.Add(seed)
	}
	h := &Handler{FormPayload: true}
	var err error
	h.accepted, err = parseMediaRanges([]string{"application/json", "application/*+json"})
	if err != nil {
		f.Fatal(err)
	}
	wanted := func(mt string) bool {
		sub, ok := strings.CutPrefix(mt, "application/")
		return ok && (sub == "json" || sub == "x-www-form-urlencoded" || len(sub) > len("+json") && strings.HasSuffix(sub, "+json"))
	}
	utf8Charset := func(params map[string]string) bool {
		cs := strings.ToLower(params["charset"])
		return cs == "" || cs == "utf-8" || cs == "utf8"
	}
	f.Fuzz(func(t *testing.T, header string) {
		form, ok := h.acceptContentType(header)
		mt, params, err := mime.ParseMediaType(header)
		if ok {
			if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
				t.Fatalf("accepted %q (form %v), a media type mime.ParseMediaType cannot read: %v", header, form, err)
			}
			if !wanted(mt) || form != (mt == "application/x-www-form-urlencoded") {
				t.Fatalf("accepted %q (form %v), which mime.ParseMediaType reads as %q", header, form, mt)
			}
			if err == nil && !utf8Charset(params) {
				t.Fatalf("accepted %q with charset %q", header, params["charset"])
			}
			return
		}
		if err == nil && wanted(mt) && utf8Charset(params) {
			t.Fatalf("refused %q, which mime.ParseMediaType reads as %q %v", header, mt, params)
		}
	})
}

// FuzzFormPayload: decoding a form body never panics and agrees with
// url.ParseQuery: the payload is the value of the one payload field, and
// a body it cannot parse, or with no or several payload fields, is
// refused.
func FuzzFormPayload(f *testing.F) {
	for _, seed := range []string{"payload=%7B%7D", "payload={\"a\":1}&x=y", "payload=", "payload=1&payload=2", "%zz", "a=b", "", "payload=%7B%7D;x=1", "x=1&payload=a+b%2Bc"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := formPayload(body)
		vals, perr := url.ParseQuery(string(body))
		switch {
		case perr != nil:
			if err == nil {
				t.Fatalf("accepted %q, which url.ParseQuery refuses (%v)", body, perr)
			}
		case len(vals["payload"]) != 1:
			if err == nil {
				t.Fatalf("accepted %q with %d payload fields", body, len(vals["payload"]))
			}
		case err != nil:
			t.Fatalf("refused %q (%v), whose payload url.ParseQuery reads as %q", body, err, vals.Get("payload"))
		case string(doc) != vals.Get("payload"):
			t.Fatalf("payload %q, url.ParseQuery reads %q", doc, vals.Get("payload"))
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
