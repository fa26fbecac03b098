package reshape_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/reshape"
)

const input = `{"petname":"Gromit","petstatus":"Sold","price":1.50,"big":12345678901234567890,` +
	`"ok":true,"none":null,"tags":["a","b"],"owner":{"name":"Wallace","city":"Wigan"},` +
	`"a.b":"dotted","text":"caf\u00e9 <\"q\">","items":[{"id":1},{"id":2}]}`

// resolver stands in for Caddy's replacer.
func resolver(key string) (any, bool) {
	v, ok := map[string]any{
		"http.request.header.X-Tenant": "acme",
		"time.now.unix":                int64(1795400000),
		"ratio":                        0.25,
		"flag":                         true,
		"env.REGION":                   "eu-west",
	}[key]
	return v, ok
}

func TestApply(t *testing.T) {
	cases := []struct {
		name string
		keep bool
		ops  []reshape.Op
		want string
	}{
		{"canonical pet flow", false, []reshape.Op{
			{Path: "Name", Value: "{json.petname}"}, {Path: "Status", Value: "{json.petstatus}"},
		}, `{"Name":"Gromit","Status":"Sold"}`},
		{"types copied raw", false, []reshape.Op{
			{Path: "p", Value: "{json.price}"},
			{Path: "b", Value: "{json.big}"},
			{Path: "ok", Value: "{json.ok}"},
			{Path: "n", Value: "{json.none}"},
			{Path: "t", Value: "{json.tags}"},
			{Path: "o", Value: "{json.owner}"},
			{Path: "s", Value: "{json.text}"},
		}, `{"p":1.50,"b":12345678901234567890,"ok":true,"n":null,"t":["a","b"],"o":{"name":"Wallace","city":"Wigan"},"s":"caf\u00e9 <\"q\">"}`},
		{"nested destination", false, []reshape.Op{
			{Path: "customer.address.city", Value: "{json.owner.city}"},
		}, `{"customer":{"address":{"city":"Wigan"}}}`},
		{"array index and append", false, []reshape.Op{
			{Path: "ids.0", Value: "{json.items.0.id}"}, {Path: "ids.-1", Value: "{json.items.1.id}"},
		}, `{"ids":[1,2]}`},
		{"gjson query source", false, []reshape.Op{{Path: "ids", Value: "{json.items.#.id}"}}, `{"ids":[1,2]}`},
		{"escaped dots", false, []reshape.Op{{Path: `x\.y`, Value: `{json.a\.b}`}}, `{"x.y":"dotted"}`},
		{"missing optional omitted", false, []reshape.Op{
			{Path: "Name", Value: "{json.petname}"}, {Path: "Color", Value: "{json.color}"},
		}, `{"Name":"Gromit"}`},
		{"mixed text", false, []reshape.Op{
			{Path: "msg", Value: "{json.petname} is {json.petstatus} for {json.price} ({json.color})"},
		}, `{"msg":"Gromit is Sold for 1.50 ()"}`},
		{"placeholders typed", false, []reshape.Op{
			{Path: "tenant", Value: "{http.request.header.X-Tenant}"},
			{Path: "at", Value: "{time.now.unix}"},
			{Path: "r", Value: "{ratio}"},
			{Path: "f", Value: "{flag}"},
			{Path: "where", Value: "{env.REGION}/{json.owner.city}"},
		}, `{"tenant":"acme","at":1795400000,"r":0.25,"f":true,"where":"eu-west/Wigan"}`},
		{"unknown placeholder stays", false, []reshape.Op{{Path: "u", Value: "{nope.key}"}}, `{"u":"{nope.key}"}`},
		{"literals", false, []reshape.Op{
			{Path: "n", Value: "5"},
			{Path: "s", Value: "hello world"},
			{Path: "q", Value: `"5"`},
			{Path: "o", Value: `{"a":1,"b":[true]}`},
			{Path: "e", Value: "{}"},
			{Path: "z", Value: "01234"},
			{Path: "braces", Value: `text {"a":1} more`},
			{Path: "esc", Value: `\{json.petname\}`},
		}, `{"n":5,"s":"hello world","q":"5","o":{"a":1,"b":[true]},"e":{},"z":"01234","braces":"text {\"a\":1} more","esc":"{json.petname}"}`},
		{"keep and delete", true, []reshape.Op{
			{Delete: true, Path: "items"},
			{Delete: true, Path: "owner.city"},
			{Delete: true, Path: "absent"},
			{Path: "Name", Value: "{json.petname}"},
			{Delete: true, Path: "petname"},
		}, `{"petstatus":"Sold","price":1.50,"big":12345678901234567890,"ok":true,"none":null,"tags":["a","b"],"owner":{"name":"Wallace"},"a.b":"dotted","text":"caf\u00e9 <\"q\">","Name":"Gromit"}`},
		{"delete without keep", false, []reshape.Op{
			{Path: "o", Value: "{json.owner}"}, {Delete: true, Path: "o.city"},
		}, `{"o":{"name":"Wallace"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := reshape.Compile(tc.keep, tc.ops)
			if err != nil {
				t.Fatal(err)
			}
			in := []byte(input)
			got, err := p.Apply(in, resolver)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("output is not JSON: %s", got)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if string(in) != input {
				t.Error("Apply modified its input")
			}
		})
	}
}

func TestRequired(t *testing.T) {
	p, err := reshape.Compile(false, []reshape.Op{
		{Path: "Name", Value: "{json.petname}", Required: true},
		{Path: "Owner", Value: "Owner: {json.owner.email}", Required: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply([]byte(input), nil)
	var missing *reshape.MissingError
	if !errors.As(err, &missing) || missing.Path != "owner.email" || out != nil {
		t.Fatalf("got %s, %v; want MissingError for owner.email", out, err)
	}
	if !strings.Contains(err.Error(), "owner.email") {
		t.Errorf("error %q does not name the path", err)
	}
	_, err = p.Apply([]byte(`{"owner":{"email":"w@example.com"}}`), nil)
	if !errors.As(err, &missing) || missing.Path != "petname" {
		t.Fatalf("got %v; want MissingError for petname", err)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, ops := range [][]reshape.Op{
		{{Path: "", Value: "x"}},
		{{Path: "a..b", Value: "x"}},
		{{Path: "items.#.id", Value: "x"}},
		{{Path: "a", Value: "literal", Required: true}},
		{{Delete: true, Path: ""}},
	} {
		if _, err := reshape.Compile(false, ops); err == nil {
			t.Errorf("accepted %+v", ops)
		}
	}
}

func TestKeepNeedsObject(t *testing.T) {
	p, err := reshape.Compile(true, []reshape.Op{{Path: "a", Value: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`[1,2]`, `"s"`, `{"a":`} {
		if _, err := p.Apply([]byte(in), nil); err == nil {
			t.Errorf("keep over %s accepted", in)
		}
	}
}

func FuzzApply(f *testing.F) {
	f.Add([]byte(input), "a.b", "{json.owner}", false)
	f.Add([]byte(`{"x":[1,{"y":"z"}]}`), "out.-1", "v {json.x.1.y} {env.X}", true)
	f.Add([]byte(`[]`), `k\.k`, `{"lit":1}`, false)
	f.Fuzz(func(t *testing.T, body []byte, path, value string, keep bool) {
		p, err := reshape.Compile(keep, []reshape.Op{{Path: path, Value: value}, {Path: "fixed", Value: "{json.x}"}})
		if err != nil {
			return
		}
		out, err := p.Apply(body, resolver)
		if err == nil && json.Valid(body) && !json.Valid(out) {
			t.Fatalf("valid input %q with set %q %q gave invalid JSON %q", body, path, value, out)
		}
	})
}

func BenchmarkApply(b *testing.B) {
	body := []byte(`{"ref":"refs/heads/main","before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",` +
		`"repository":{"id":1296269,"full_name":"octocat/Hello-World","private":false,"owner":{"login":"octocat","id":1}},` +
		`"pusher":{"name":"octocat","email":"octocat@github.com"},"sender":{"login":"octocat","id":1,"site_admin":false},` +
		`"head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Update README","timestamp":"2026-11-23T10:00:00Z"},"padding":"` +
		strings.Repeat("x", 500) + `"}`)
	ops := []reshape.Op{
		{Path: "ref", Value: "{json.ref}"},
		{Path: "after", Value: "{json.after}"},
		{Path: "repo.name", Value: "{json.repository.full_name}", Required: true},
		{Path: "repo.id", Value: "{json.repository.id}"},
		{Path: "repo.private", Value: "{json.repository.private}"},
		{Path: "owner", Value: "{json.repository.owner}"},
		{Path: "pusher", Value: "{json.pusher.name}"},
		{Path: "commit.id", Value: "{json.head_commit.id}"},
		{Path: "commit.message", Value: "{json.head_commit.message}"},
		{Path: "summary", Value: "{json.pusher.name} pushed to {json.ref}"},
	}
	for _, keep := range []bool{false, true} {
		name := "1KiB_10mappings"
		if keep {
			name = "keep_1KiB"
		}
		p, err := reshape.Compile(keep, ops)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Apply(body, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
