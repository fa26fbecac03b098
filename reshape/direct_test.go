package reshape

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The direct builder must give exactly what the general sjson path gives.

var directBody = []byte(`{"petname":"Gromit","petstatus":"Sold","price":1.50,"big":12345678901234567890,` +
	`"ok":true,"none":null,"tags":["a","b"],"owner":{"name":"Wallace","city":"Wigan"},` +
	`"text":"caf\u00e9 <\"q\">","items":[{"id":1},{"id":2}]}`)

func directResolver(key string) (any, bool) {
	v, ok := map[string]any{"tenant": "acme", "n": int64(7), "f": 0.5, "b": true}[key]
	return v, ok
}

func checkSame(t *testing.T, body []byte, ops []Op) {
	t.Helper()
	p, err := Compile(false, ops)
	if err != nil {
		return
	}
	if p.tree == nil {
		return
	}
	body = p.source(body) // as Apply does
	fast, ferr := p.applyDirect(body, directResolver)
	slow, serr := p.applySjson(body, directResolver)
	var fm, sm *MissingError
	switch {
	case errors.As(ferr, &fm) && errors.As(serr, &sm):
		if fm.Path != sm.Path {
			t.Fatalf("ops %+v: missing %q, general path says %q", ops, fm.Path, sm.Path)
		}
	case (ferr == nil) != (serr == nil):
		t.Fatalf("ops %+v: direct error %v, general error %v", ops, ferr, serr)
	case ferr == nil && !bytes.Equal(fast, slow):
		t.Fatalf("ops %+v:\ndirect  %s\ngeneral %s", ops, fast, slow)
	}
}

func TestDirectMatchesGeneral(t *testing.T) {
	cases := [][]Op{
		{{Path: "Name", Value: "{json.petname}"}, {Path: "Status", Value: "{json.petstatus}"}},
		{{Path: "a.b.c", Value: "{json.owner.city}"}, {Path: "a.x", Value: "{json.price}"}, {Path: "z", Value: "{json.big}"}, {Path: "a.b.d", Value: "{json.tags}"}},
		{{Path: "a.b", Value: "{json.nope}"}, {Path: "c", Value: "1"}},
		{{Path: "a.b", Value: "{json.nope}"}, {Path: "a.c", Value: "{json.nope2}"}},
		{{Path: "only", Value: "{json.nope}"}},
		{{Path: "m", Value: "{json.petname} costs {json.price} at {tenant} {unknown} {json.gone}"}},
		{{Path: "t", Value: "{tenant}"}, {Path: "n", Value: "{n}"}, {Path: "f", Value: "{f}"}, {Path: "b", Value: "{b}"}, {Path: "s", Value: "{json.text}"}},
		{{Path: "lit", Value: `{"x":[1,2]}`}, {Path: "str", Value: "hello"}, {Path: "num", Value: "5"}, {Path: "q", Value: `"5"`}},
		{{Path: "r1", Value: "{json.nope}", Required: true}, {Path: "r2", Value: "{json.petname}"}},
		{{Path: "x.y", Value: "{json.nope}", Required: true}, {Path: "a", Value: "{json.gone} and {json.nope2}", Required: true}},
		{{Path: "b", Value: "{json.gone2} {json.petname}", Required: true}, {Path: "a", Value: "{json.gone}", Required: true}},
		// the missing source is not the op's first part: the error names the op's path, not another op's
		{{Path: "a", Value: "{json.petname}"}, {Path: "b", Value: "x {json.petname} {json.gone}", Required: true}},
	}
	for _, ops := range cases {
		p, err := Compile(false, ops)
		if err != nil {
			t.Fatal(err)
		}
		if p.tree == nil {
			t.Fatalf("ops %+v should take the direct builder", ops)
		}
		checkSame(t, directBody, ops)
	}
	// programs the direct builder must leave to sjson
	for _, ops := range [][]Op{
		{{Path: "a", Value: "1"}, {Path: "a", Value: "2"}},
		{{Path: "a", Value: "1"}, {Path: "a.b", Value: "2"}},
		{{Path: "a.b", Value: "1"}, {Path: "a", Value: "2"}},
		{{Path: "ids.0", Value: "1"}},
		{{Path: `x\.y`, Value: "1"}},
		{{Path: "a", Value: "1"}, {Path: "b", Delete: true}},
		{{Path: "ключ", Value: "1"}},
	} {
		p, err := Compile(false, ops)
		if err != nil {
			t.Fatal(err)
		}
		if p.tree != nil {
			t.Errorf("ops %+v took the direct builder", ops)
		}
	}
}

func FuzzDirect(f *testing.F) {
	f.Add(directBody, "a.b", "{json.owner}", "a.c", "{json.petname} x {tenant}", "z", "{json.nope}", false)
	f.Add([]byte(`{"x":[1,{"y":"z"}]}`), "out", "{json.x.1.y}", "out2.k", "7", "q", "{n}", true)
	f.Fuzz(func(t *testing.T, body []byte, p1, v1, p2, v2, p3, v3 string, req bool) {
		// Apply's input is JSON the handler has already validated; what it
		// makes of anything else is unspecified
		if !json.Valid(body) {
			return
		}
		ops := []Op{{Path: p1, Value: v1}, {Path: p2, Value: v2, Required: req}, {Path: p3, Value: v3}}
		checkSame(t, body, ops)
		if p, err := Compile(false, ops); err == nil {
			if out, err := p.Apply(body, directResolver); err == nil && !json.Valid(out) {
				t.Fatalf("valid input %q with %+v gave invalid JSON %q", body, ops, out)
			}
		}
	})
}

func BenchmarkDirectVsGeneral(b *testing.B) {
	ops := []Op{
		{Path: "ref", Value: "{json.petname}"},
		{Path: "after", Value: "{json.petstatus}"},
		{Path: "repo.name", Value: "{json.owner.name}", Required: true},
		{Path: "repo.id", Value: "{json.price}"},
		{Path: "repo.private", Value: "{json.ok}"},
		{Path: "owner", Value: "{json.owner}"},
		{Path: "pusher", Value: "{json.owner.city}"},
		{Path: "commit.id", Value: "{json.items.0.id}"},
		{Path: "commit.message", Value: "{json.text}"},
		{Path: "summary", Value: "{json.petname} is {json.petstatus}"},
	}
	body := []byte(strings.TrimSuffix(string(directBody), "}") + `,"padding":"` + strings.Repeat("x", 700) + `"}`)
	p, err := Compile(false, ops)
	if err != nil || p.tree == nil {
		b.Fatal("not direct", err)
	}
	for _, run := range []struct {
		name string
		fn   func([]byte, Resolver) ([]byte, error)
	}{{"direct", p.applyDirect}, {"sjson", p.applySjson}} {
		b.Run(run.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := run.fn(body, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestHugeIndexRefused(t *testing.T) {
	for _, path := range []string{"a.1001", "0.00000000002000000000000000000000", "x.99999", `0.0000000000400000000000000000000000000000000000000000000000000000\`, `a.9\9999`} {
		if _, err := Compile(false, []Op{{Path: path, Value: "1"}}); err == nil {
			t.Errorf("path %q compiled: sjson would pad an array with that many nulls", path)
		}
	}
	if _, err := Compile(false, []Op{{Path: "a.1000", Value: "1"}, {Path: "b.0", Value: "1"}}); err != nil {
		t.Errorf("small indexes refused: %v", err)
	}
}

func TestScalarDocumentHasNoFields(t *testing.T) {
	for _, body := range []string{`"[0"`, ` "{\"a\":1}"`, `5`, `true`, `null`} {
		for _, path := range []string{"0", "a"} {
			for _, name := range []string{"direct", "sjson"} {
				ops := []Op{{Path: "x", Value: "{json." + path + "}"}, {Path: "y", Value: "t {json." + path + "}"}}
				if name == "sjson" {
					ops = append(ops, Op{Path: "z", Delete: true})
				}
				p, err := Compile(false, ops)
				if err != nil {
					t.Fatal(err)
				}
				out, err := p.Apply([]byte(body), nil)
				if err != nil || string(out) != `{"y":"t "}` {
					t.Errorf("%s: %s {json.%s}: %s %v", name, body, path, out, err)
				}
			}
		}
	}
}

func TestSetBelowScalarRefused(t *testing.T) {
	p, err := Compile(false, []Op{{Path: "0", Value: "[0"}, {Path: "1", Value: "0"}, {Path: "0.0", Value: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := p.Apply([]byte(`{}`), nil); !errors.Is(err, ErrBelowScalar) {
		t.Fatalf("got %s %v, want ErrBelowScalar", out, err)
	}
	// below an object that an earlier op copied: fine
	p, err = Compile(false, []Op{{Path: "o", Value: "{json.owner}"}, {Path: "o.zip", Value: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := p.Apply(directBody, nil); err != nil || string(out) != `{"o":{"name":"Wallace","city":"Wigan","zip":1}}` {
		t.Fatalf("extending a copied object: %s %v", out, err)
	}
}

func TestLiteralSourcesAreCheckedJSON(t *testing.T) {
	for _, extra := range [][]Op{nil, {{Path: "z", Delete: true}}} { // direct, then sjson
		ops := append([]Op{{Path: "a", Value: "{json.!00}"}, {Path: "b", Value: "{json.!true}"}, {Path: "c", Value: "{json.!00}", Required: true}}, extra...)
		p, err := Compile(false, ops)
		if err != nil {
			t.Fatal(err)
		}
		var missing *MissingError
		if _, err := p.Apply([]byte(`{}`), nil); !errors.As(err, &missing) || missing.Path != "!00" {
			t.Errorf("required literal that is not JSON: %v", err)
		}
		p, err = Compile(false, append([]Op{ops[0], ops[1]}, extra...))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := p.Apply([]byte(`{}`), nil); err != nil || string(out) != `{"b":true}` {
			t.Errorf("literals: %s %v", out, err)
		}
	}
}
