package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/caddy-webhooks/gateway/reshape"
)

// Placeholder names.
const (
	phPrefix         = "http.webhook_gateway."
	phID             = phPrefix + "id"
	phAuth           = phPrefix + "auth"
	phReceivedAt     = phPrefix + "received_at"
	phJSON           = phPrefix + "json."
	phAttempts       = phPrefix + "attempts"
	phUpstreamStatus = phPrefix + "upstream_status"
)

const formMediaType = "application/x-www-form-urlencoded"

// maxJSONDepth bounds nesting so a hostile document cannot make any later
// consumer recurse without limit.
const maxJSONDepth = 512

// mediaRange is an accepted media type: exact ("application/json"), a
// subtype wildcard ("text/*") or a structured-syntax suffix wildcard
// ("application/*+json").
type mediaRange struct {
	typ, sub string // sub is "*" or "*+suffix" for wildcards
}

func parseMediaRanges(types []string) ([]mediaRange, error) {
	out := make([]mediaRange, 0, len(types))
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		typ, sub, ok := strings.Cut(t, "/")
		if !ok || typ == "" || sub == "" || typ == "*" || strings.ContainsAny(t, " ;,") {
			return nil, fmt.Errorf("content_type: invalid media type %q", t)
		}
		if strings.Contains(sub, "*") && sub != "*" && !strings.HasPrefix(sub, "*+") {
			return nil, fmt.Errorf("content_type: invalid wildcard %q", t)
		}
		out = append(out, mediaRange{typ: typ, sub: sub})
	}
	return out, nil
}

func (m mediaRange) match(typ, sub string) bool {
	if typ != m.typ {
		return false
	}
	switch {
	case m.sub == "*":
		return true
	case strings.HasPrefix(m.sub, "*+"):
		suffix := m.sub[1:] // "+json"
		return len(sub) > len(suffix) && strings.HasSuffix(sub, suffix)
	default:
		return sub == m.sub
	}
}

// acceptContentType reports whether the Content-Type is accepted and
// whether it is the form encoding that carries a payload field.
func (h *Handler) acceptContentType(header string) (form, ok bool) {
	typ, sub, params, valid := splitMediaType(header)
	if !valid || !utf8Charset(params) {
		return false, false
	}
	if h.FormPayload && typ == "application" && sub == "x-www-form-urlencoded" {
		return true, true
	}
	for _, m := range h.accepted {
		if m.match(typ, sub) {
			return false, true
		}
	}
	return false, false
}

// splitMediaType splits "Type/Sub; params" into lower-cased type and
// subtype and the raw parameter string, without allocating for the common
// lower-case case.
func splitMediaType(v string) (typ, sub, params string, ok bool) {
	mt, params, _ := strings.Cut(v, ";")
	mt = strings.TrimSpace(mt)
	typ, sub, found := strings.Cut(mt, "/")
	if !found || !isToken(typ) || !isToken(sub) {
		return "", "", "", false
	}
	return lowerASCII(typ), lowerASCII(sub), params, true
}

// isToken: a non-empty RFC 9110 token, as a media type's type and subtype
// must be (so `application/vnd(x+json` is not a JSON type).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// utf8Charset accepts parameters with no charset or charset=utf-8: JSON
// must be UTF-8 (RFC 8259), so any other declared charset is refused.
func utf8Charset(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "charset") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		if !strings.EqualFold(v, "utf-8") && !strings.EqualFold(v, "utf8") {
			return false
		}
	}
	return true
}

// readBody reads the whole body, refusing a declared or actual length over
// max with *http.MaxBytesError. A declared length is read into a buffer of
// exactly that size, so the body is never copied to grow it.
//
// When the body is refused or cannot be read, the response asks for the
// connection to be closed: otherwise the server would try to read the rest
// of the body before answering (Caddy wraps the request body, so the
// standard library's own too-large signal never reaches it), and a sender
// that declared a large Content-Length and waits would get no answer.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		w.Header().Set("Connection", "close")
		return nil, &http.MaxBytesError{Limit: max}
	}
	body, err := readLimited(w, r, max)
	if err != nil {
		w.Header().Set("Connection", "close")
		return nil, err
	}
	return body, nil
}

func readLimited(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// checkJSON validates the document: UTF-8, bounded depth, one JSON value.
// Its error names the byte offset of the problem.
func checkJSON(doc []byte) error {
	if validJSON(doc, maxJSONDepth) {
		return nil
	}
	// invalid: find what to say, off the hot path
	if len(bytes.TrimSpace(doc)) == 0 {
		return errors.New("body is empty, expected JSON")
	}
	if off, ok := depthWithin(doc, maxJSONDepth); !ok {
		return fmt.Errorf("invalid JSON at byte %d: nested deeper than %d levels", off, maxJSONDepth)
	}
	if !utf8.Valid(doc) {
		return fmt.Errorf("invalid JSON at byte %d: not UTF-8", invalidUTF8Offset(doc))
	}
	var syn *json.SyntaxError
	if err := json.Unmarshal(doc, new(json.RawMessage)); errors.As(err, &syn) {
		// Offset counts the bytes read, the bad one included.
		return fmt.Errorf("invalid JSON at byte %d: %s", max(syn.Offset-1, 0), syn.Error())
	}
	return errors.New("invalid JSON")
}

// depthWithin scans brackets outside strings and reports whether nesting
// stays within max, or the offset where it first goes deeper. Strings are
// skipped with IndexByte, so long string values cost little.
func depthWithin(doc []byte, max int) (int, bool) {
	depth := 0
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '"':
			end, ok := stringEnd(doc, i)
			if !ok {
				return 0, true // unterminated: the validator reports it
			}
			i = end
		case '{', '[':
			depth++
			if depth > max {
				return i, false
			}
		case '}', ']':
			depth--
		}
	}
	return 0, true
}

// stringEnd finds the quote closing the string that opens at doc[open].
func stringEnd(doc []byte, open int) (int, bool) {
	j := open + 1
	for {
		k := bytes.IndexByte(doc[j:], '"')
		if k < 0 {
			return 0, false
		}
		j += k
		backslashes := 0
		for p := j - 1; p > open && doc[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return j, true
		}
		j++
	}
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// formPayload extracts the JSON document from the payload field of a
// form-encoded body.
func formPayload(body []byte) ([]byte, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("invalid form body")
	}
	p, ok := vals["payload"]
	if !ok || len(p) != 1 {
		return nil, errors.New("form body needs exactly one payload field")
	}
	return []byte(p[0]), nil
}

// withBody gives the next handler body as the request body with a matching
// Content-Length, and a JSON content type when the body was rewritten.
func withBody(r *http.Request, body []byte, rewritten bool) *http.Request {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
	if rewritten {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// jsonPlaceholders resolves {http.webhook_gateway.json.<path>} lazily: a
// string value gives its text, any other value its raw JSON, a missing
// path an empty string.
func jsonPlaceholders(doc []byte) caddy.ReplacerFunc {
	fields := reshape.HasFields(doc)
	return func(key string) (any, bool) {
		path, ok := strings.CutPrefix(key, phJSON)
		if !ok {
			return nil, false
		}
		if !fields {
			return "", true
		}
		res := gjson.GetBytes(doc, path)
		if res.Type == gjson.String {
			return res.Str, true
		}
		return res.Raw, true
	}
}

type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"internal error","status":500}`)
		status = http.StatusInternalServerError
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
