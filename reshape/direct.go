package reshape

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// The direct builder writes the output object in one pass, without sjson,
// for the common program: no keep, no delete, destinations made of plain
// object keys, none a prefix of another. Values are read with gjson
// straight from the body (no copies) and appended to the output. It gives
// byte for byte what the general sjson path gives; a differential fuzz
// test holds the two together.

// node is a destination object key: a leaf set by ops[op], or an object
// with children in the order their first op appeared.
type node struct {
	keyJSON  []byte // `"key":`
	op       int    // leaf: index into Program.ops; object: -1
	children []*node
}

// buildTree returns the destination tree of ops, or nil when the program
// needs the general path.
func buildTree(keep bool, ops []op) *node {
	if keep || len(ops) == 0 {
		return nil
	}
	root := &node{op: -1}
	for i := range ops {
		if ops[i].del {
			return nil
		}
		cur := root
		keys := splitPlain(ops[i].path)
		if keys == nil {
			return nil
		}
		for j, k := range keys {
			if cur.op >= 0 {
				return nil // a leaf would become an object: let sjson decide
			}
			var next *node
			for _, c := range cur.children {
				if string(c.keyJSON[1:len(c.keyJSON)-2]) == k {
					next = c
					break
				}
			}
			last := j == len(keys)-1
			if next == nil {
				next = &node{keyJSON: []byte(`"` + k + `":`), op: -1}
				cur.children = append(cur.children, next)
				if last {
					next.op = i
				}
			} else if last {
				return nil // set twice, or a leaf over an object
			}
			cur = next
		}
	}
	return root
}

// splitPlain splits a path of plain keys, or returns nil when any key is
// not plain: escapes, array indexes ("0", "-1") and characters that would
// need escaping in JSON go the general way.
func splitPlain(path string) []string {
	var keys []string
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '.' {
			c := path[i]
			if !isKeyByte(c) {
				return nil
			}
			continue
		}
		k := path[start:i]
		if k == "" || isIndex(k) {
			return nil
		}
		keys = append(keys, k)
		start = i + 1
	}
	return keys
}

func isKeyByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '_' || c == '-' || c == '$'
}

func isIndex(k string) bool {
	if k == "-1" {
		return true
	}
	for i := 0; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return false
		}
	}
	return true
}

// maxFirsts bounds the top-level keys read in one pass.
const maxFirsts = 32

// indexSources splits each plain {json.a.b.c} source into its first key
// ("a", read for all sources in one pass over the body) and the rest
// ("b.c", read within that value).
func (p *Program) indexSources() {
	for i := range p.ops {
		parts := p.ops[i].tmpl.parts
		for j := range parts {
			pt := &parts[j]
			pt.first = -1
			if pt.jsonPath == "" {
				continue
			}
			keys := splitPlain(pt.jsonPath)
			if keys == nil {
				continue
			}
			first, rest, _ := strings.Cut(pt.jsonPath, ".")
			idx := slices.Index(p.firsts, first)
			if idx < 0 {
				if len(p.firsts) == maxFirsts {
					continue
				}
				idx = len(p.firsts)
				p.firsts = append(p.firsts, first)
			}
			pt.first, pt.rest = idx, rest
		}
	}
}

// direct builds the output of a program with a tree.
type direct struct {
	p           *Program
	body        string
	resolve     Resolver
	scratch     []byte
	missing     int    // index of the first required op whose source is missing, or -1
	missingPath string // that source
	// values of the top-level keys in Program.firsts, read in one pass
	values [maxFirsts]gjson.Result
}

// scanFirsts reads the values of the program's top-level keys in one pass
// over the body; the first occurrence of a key wins, as with gjson.Get.
func (d *direct) scanFirsts() {
	want := len(d.p.firsts)
	if want == 0 {
		return
	}
	gjson.Parse(d.body).ForEach(func(k, v gjson.Result) bool {
		if k.Type != gjson.String {
			return false // not an object
		}
		for i, name := range d.p.firsts {
			if name == k.Str && !d.values[i].Exists() {
				d.values[i] = v
				want--
				break
			}
		}
		return want > 0
	})
}

// get reads a {json.*} source.
func (d *direct) get(pt *part) gjson.Result {
	if pt.first < 0 {
		return gjson.Get(d.body, pt.jsonPath)
	}
	v := d.values[pt.first]
	if pt.rest == "" || !v.Exists() {
		return v
	}
	return gjson.Get(v.Raw, pt.rest)
}

func (p *Program) applyDirect(body []byte, resolve Resolver) ([]byte, error) {
	// a read-only view of body, which Apply never modifies; gjson results point into it
	d := direct{p: p, body: unsafe.String(unsafe.SliceData(body), len(body)), resolve: resolve, missing: -1} //nolint:gosec // see above
	d.scanFirsts()
	out := make([]byte, 0, p.outHint)
	out, _ = d.object(out, p.tree)
	if d.missing >= 0 {
		return nil, &MissingError{Path: d.missingPath}
	}
	return out, nil
}

// object appends the object of n; wrote is false when every field of it
// was omitted (and nothing was appended for a nested object).
func (d *direct) object(out []byte, n *node) ([]byte, bool) {
	out = append(out, '{')
	empty := len(out)
	for _, c := range n.children {
		mark := len(out)
		if len(out) > empty {
			out = append(out, ',')
		}
		out = append(out, c.keyJSON...)
		var ok bool
		if c.op >= 0 {
			out, ok = d.leaf(out, c.op)
		} else {
			out, ok = d.object(out, c)
		}
		if !ok {
			out = out[:mark]
		}
	}
	out = append(out, '}')
	return out, len(out) > empty+1 || n == d.p.tree
}

// leaf appends the value of ops[i]; ok is false when it is omitted.
func (d *direct) leaf(out []byte, i int) ([]byte, bool) {
	o := &d.p.ops[i]
	t := &o.tmpl
	if t.raw != nil {
		return append(out, t.raw...), true
	}
	if len(t.parts) == 1 {
		pt := &t.parts[0]
		if pt.jsonPath != "" {
			res := d.get(pt)
			if !res.Exists() || pt.checkRaw && !gjson.Valid(res.Raw) {
				d.fail(o, i, pt.jsonPath)
				return out, false
			}
			return append(out, res.Raw...), true
		}
		if v, known := lookup(d.resolve, pt.key); known {
			return typedJSON(out, v), true
		}
	}
	text, missing := t.render(d.scratch[:0], d.get, d.resolve, o.required)
	if missing != "" {
		d.fail(o, i, missing)
		return out, false
	}
	d.scratch = text
	// text is only read while appended, before the scratch buffer is reused
	return gjson.AppendJSONString(out, unsafe.String(unsafe.SliceData(text), len(text))), true //nolint:gosec // see above
}

func (d *direct) fail(o *op, i int, path string) {
	if o.required && (d.missing < 0 || i < d.missing) {
		d.missing, d.missingPath = i, path
	}
}
