// Package reshape maps fields of a received JSON document into a new one.
//
// A Program is a list of set and delete operations compiled once and
// applied per request over the raw body: gjson reads, sjson writes, and
// values are copied as raw JSON, never decoded and re-encoded.
//
// Value templates of set:
//
//   - "{json.<path>}" as the whole value copies the value at the gjson path
//     with its type: numbers stay numbers (byte for byte), objects and
//     arrays stay as they are, strings stay strings. A missing source
//     omits the field, or fails the Program with *MissingError when the
//     op is Required.
//   - Mixed text, such as "Pet {json.name} is {json.status}", gives a JSON
//     string: string values are inserted as their text, other values as
//     their raw JSON text, a missing optional source as nothing.
//   - Any other placeholder ("{http.request.header.X}", "{time.now.unix}")
//     is resolved by the caller's Resolver. As the whole value, a Go number
//     becomes a JSON number and a bool a JSON bool; anything else a string.
//   - Unknown placeholders stay as written, braces included, so literals
//     such as `{"a":1}` survive. `\{` and `\}` escape a brace.
//   - A whole value with no placeholder that is valid JSON (a number, true,
//     false, null, an object, an array or a quoted string) is inserted as
//     that JSON; other text is inserted as a string. To force a string,
//     quote it: `"\"5\""` in a Caddyfile gives the string "5".
//
// Paths use gjson/sjson syntax: "a.b.c" nests, "items.0" indexes an array,
// "items.-1" appends, and `a\.b` is a key containing a dot.
package reshape

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Op is one mapping line, applied in order.
type Op struct {
	Delete   bool   // true: remove Path; false: set Path to Value
	Path     string // destination (set) or path to remove (delete)
	Value    string // set: the value template
	Required bool   // set: a missing {json.*} source fails the whole reshape
}

// Resolver resolves a placeholder key (without braces) that is not a
// {json.*} one, and reports whether the key is known.
type Resolver func(key string) (any, bool)

// ErrBelowScalar: an op sets a path below a value that an earlier op made
// a string, number, bool or null.
var ErrBelowScalar = errors.New("a mapping sets a field below a value that is not an object or array")

// MissingError reports a required source that the document lacks.
type MissingError struct {
	Path string // the gjson path of the missing {json.<path>} source
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("required field %q is missing", e.Path)
}

// Program is a compiled list of ops. It is immutable and safe for
// concurrent use.
type Program struct {
	keep    bool
	ops     []op
	tree    *node // set when the direct builder can run the program
	outHint int
	firsts  []string // top-level keys the direct builder reads in one pass
}

type op struct {
	del      bool
	path     string
	required bool
	tmpl     template
}

// part is a piece of a template: literal text, a {json.*} source, or
// another placeholder.
type part struct {
	lit      string
	key      string // placeholder key; "" for literal text
	jsonPath string // set when key is a json.* source
	// For the direct builder: the source's first key, as an index into
	// Program.firsts, and the path below it; first is -1 when the path is
	// not a plain key path.
	first int
	rest  string
	// checkRaw: the path can yield a value that is not valid JSON
	checkRaw bool
}

type template struct {
	parts []part
	// raw is the JSON to insert when the template has no placeholder.
	raw []byte
}

var setOpts = &sjson.Options{Optimistic: true, ReplaceInPlace: true}

// Compile checks ops and prepares them. keep starts the output from the
// received document instead of an empty object.
func Compile(keep bool, ops []Op) (*Program, error) {
	p := &Program{keep: keep, ops: make([]op, 0, len(ops))}
	for i, o := range ops {
		if err := checkPath(o.Path); err != nil {
			return nil, fmt.Errorf("op #%d: %w", i+1, err)
		}
		c := op{del: o.Delete, path: o.Path, required: o.Required}
		if !o.Delete {
			c.tmpl = parseTemplate(o.Value)
			if o.Required && !c.tmpl.hasJSON() {
				return nil, fmt.Errorf("op #%d (set %s): required needs a {json.*} source in the value", i+1, o.Path)
			}
		}
		p.ops = append(p.ops, c)
	}
	p.tree = buildTree(keep, p.ops)
	if p.tree != nil {
		p.indexSources()
	}
	p.outHint = 64*len(p.ops) + 2
	return p, nil
}

// checkPath refuses paths sjson cannot write to.
func checkPath(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	if strings.ContainsAny(path, "*?#|@()[]{}=!<>%") && !strings.Contains(path, `\`) {
		return fmt.Errorf("path %q: only plain keys, array indexes and escaped dots are allowed", path)
	}
	if strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") && !strings.HasSuffix(path, `\.`) || strings.Contains(path, "..") {
		return fmt.Errorf("path %q has an empty key", path)
	}
	for seg := range strings.SplitSeq(path, ".") {
		seg = strings.ReplaceAll(seg, `\`, "") // sjson reads an escaped digit as the digit
		if isIndex(seg) && (len(seg) > 4 || seg > "1000" && len(seg) == 4) {
			return fmt.Errorf("path %q: array index %s is above 1000", path, seg)
		}
	}
	if _, err := sjson.SetRawBytes([]byte("{}"), path, []byte("1")); err != nil {
		return fmt.Errorf("path %q: %v", path, err)
	}
	return nil
}

// parseTemplate splits s into literal text and placeholders, with Caddy's
// rules for braces and escapes.
func parseTemplate(s string) template {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}') {
			lit.WriteByte(s[i+1])
			i++
			continue
		}
		if c != '{' {
			lit.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '}')
		if end < 0 {
			lit.WriteString(s[i:])
			break
		}
		key := s[i+1 : i+1+end]
		if !isKey(key) {
			// JSON braces or text, not a placeholder
			lit.WriteByte(c)
			continue
		}
		flush()
		p := part{key: key}
		if path, ok := strings.CutPrefix(key, "json."); ok {
			p.jsonPath = path
			// gjson literals (!…) and modifiers (@…) make values that are
			// not read from the body; they are checked before use as JSON
			p.checkRaw = strings.ContainsAny(path, "!@")
		}
		t.parts = append(t.parts, p)
		i += end + 1
	}
	flush()
	if !t.hasPlaceholder() {
		text := ""
		if len(t.parts) == 1 {
			text = t.parts[0].lit
		}
		t.raw = literalJSON(text)
	}
	return t
}

// isKey reports whether a brace's content can be a placeholder key: no
// spaces, quotes or colons-with-quotes that JSON text has.
func isKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		switch key[i] {
		case ' ', '\t', '\n', '\r', '"', '{', ',':
			return false
		}
	}
	return true
}

// literalJSON is the raw JSON of a literal value: itself when valid JSON,
// else a JSON string.
func literalJSON(text string) []byte {
	trimmed := strings.TrimSpace(text)
	if trimmed != "" && gjson.Valid(trimmed) {
		return []byte(trimmed)
	}
	return gjson.AppendJSONString(nil, text)
}

func (t template) hasPlaceholder() bool {
	for _, p := range t.parts {
		if p.key != "" {
			return true
		}
	}
	return false
}

func (t template) hasJSON() bool {
	for _, p := range t.parts {
		if p.jsonPath != "" {
			return true
		}
	}
	return false
}

// Apply runs the program over body, which it never modifies and which must
// be valid JSON (the handler checks it first; the output for anything else
// is unspecified). A missing required source returns *MissingError.
func (p *Program) Apply(body []byte, resolve Resolver) ([]byte, error) {
	body = p.source(body)
	if p.tree != nil {
		return p.applyDirect(body, resolve)
	}
	return p.applySjson(body, resolve)
}

// source is the document {json.*} sources are read from: a scalar document
// has no fields (gjson would read paths into a string's text), so every
// source is missing.
func (p *Program) source(body []byte) []byte {
	if !p.keep && !HasFields(body) {
		return emptyObject
	}
	return body
}

var emptyObject = []byte("{}")

// HasFields reports whether the document is an object or an array. Paths
// into any other document find nothing (gjson would read them into a
// string's text).
func HasFields(doc []byte) bool {
	for _, c := range doc {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// applySjson is the general path: every op through sjson, in order.
func (p *Program) applySjson(body []byte, resolve Resolver) ([]byte, error) {
	var out []byte
	if p.keep {
		if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
			return nil, errors.New("reshape keep needs a JSON object")
		}
		out = append(make([]byte, 0, len(body)+64*len(p.ops)), body...)
	} else {
		out = make([]byte, 2, 64*len(p.ops)+2)
		copy(out, "{}")
	}
	var scratch []byte
	for i := range p.ops {
		o := &p.ops[i]
		var err error
		if o.del {
			out, err = sjson.DeleteBytesOptions(out, o.path, setOpts)
			if err != nil {
				return nil, fmt.Errorf("delete %s: %w", o.path, err)
			}
			continue
		}
		var raw []byte
		var ok bool
		raw, scratch, ok, err = o.value(body, resolve, scratch[:0])
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // optional source missing: omit the field
		}
		out, err = sjson.SetRawBytesOptions(out, o.path, raw, setOpts)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", o.path, err)
		}
	}
	// sjson writes into whatever is at a path; a later op that goes below
	// a string or number set earlier would leave broken JSON
	if !gjson.ValidBytes(out) {
		return nil, ErrBelowScalar
	}
	return out, nil
}

// value renders the op's template to raw JSON. ok is false when a whole
// {json.*} source is missing and the op is optional.
func (o *op) value(body []byte, resolve Resolver, buf []byte) (raw, scratch []byte, ok bool, err error) {
	t := &o.tmpl
	if t.raw != nil {
		return t.raw, buf, true, nil
	}
	if len(t.parts) == 1 {
		pt := t.parts[0]
		if pt.jsonPath != "" {
			res := gjson.GetBytes(body, pt.jsonPath)
			if !res.Exists() || pt.checkRaw && !gjson.Valid(res.Raw) {
				if o.required {
					return nil, buf, false, &MissingError{Path: pt.jsonPath}
				}
				return nil, buf, false, nil
			}
			return rawOf(res, body), buf, true, nil
		}
		if v, known := lookup(resolve, pt.key); known {
			return typedJSON(buf, v), buf, true, nil
		}
	}
	// mixed text: build the string, then quote it
	text, missing := t.render(buf, func(pt *part) gjson.Result { return gjson.GetBytes(body, pt.jsonPath) }, resolve, o.required)
	if missing != "" {
		return nil, buf, false, &MissingError{Path: missing}
	}
	return gjson.AppendJSONString(nil, string(text)), text, true, nil
}

// render appends the text of a mixed template: literals, {json.*} sources
// as text (strings without their quotes, other values as raw JSON), other
// placeholders resolved or kept as written. A missing optional source adds
// nothing; a missing required one stops and is returned.
func (t *template) render(text []byte, get func(*part) gjson.Result, resolve Resolver, required bool) (out []byte, missing string) {
	for i := range t.parts {
		pt := &t.parts[i]
		switch {
		case pt.key == "":
			text = append(text, pt.lit...)
		case pt.jsonPath != "":
			res := get(pt)
			if !res.Exists() {
				if required {
					return text, pt.jsonPath
				}
				continue
			}
			if res.Type == gjson.String {
				text = append(text, res.Str...)
			} else {
				text = append(text, res.Raw...)
			}
		default:
			if v, known := lookup(resolve, pt.key); known {
				text = appendText(text, v)
			} else {
				text = append(text, '{')
				text = append(text, pt.key...)
				text = append(text, '}')
			}
		}
	}
	return text, ""
}

// rawOf returns the raw bytes of a gjson result within body without a copy
// when gjson reports the index.
func rawOf(res gjson.Result, body []byte) []byte {
	if res.Index > 0 && res.Index+len(res.Raw) <= len(body) {
		return body[res.Index : res.Index+len(res.Raw)]
	}
	return []byte(res.Raw)
}

func lookup(resolve Resolver, key string) (any, bool) {
	if resolve == nil {
		return nil, false
	}
	return resolve(key)
}

// typedJSON renders a resolved placeholder as the whole value: numbers and
// bools keep their type, everything else is a string.
func typedJSON(buf []byte, v any) []byte {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(buf, int64(x), 10)
	case int8:
		return strconv.AppendInt(buf, int64(x), 10)
	case int16:
		return strconv.AppendInt(buf, int64(x), 10)
	case int32:
		return strconv.AppendInt(buf, int64(x), 10)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case uint:
		return strconv.AppendUint(buf, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(buf, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(buf, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(buf, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(buf, x, 10)
	case float32, float64:
		f, _ := x.(float64)
		if f32, is32 := x.(float32); is32 {
			f = float64(f32)
		}
		b, err := json.Marshal(f)
		if err != nil { // NaN, Inf: not JSON numbers
			return strconv.AppendQuote(buf, fmt.Sprint(f))
		}
		return append(buf, b...)
	case bool:
		return strconv.AppendBool(buf, x)
	}
	return gjson.AppendJSONString(buf, string(appendText(nil, v)))
}

// appendText appends v as text, as Caddy's replacer renders values.
func appendText(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return buf
	case string:
		return append(buf, x...)
	case []byte:
		return append(buf, x...)
	case fmt.Stringer:
		return append(buf, x.String()...)
	case error:
		return append(buf, x.Error()...)
	default:
		return fmt.Append(buf, x)
	}
}
