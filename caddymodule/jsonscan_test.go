package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// oracleValid is what validJSON must agree with: the standard library's
// grammar, UTF-8, and the depth bound.
func oracleValid(doc []byte, maxDepth int) bool {
	if !json.Valid(doc) || !utf8.Valid(doc) {
		return false
	}
	_, ok := depthWithin(doc, maxDepth)
	return ok
}

func TestValidJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	cases := map[string]bool{
		`{}`: true, `[]`: true, ` {"a" : [1, -2.5e+3, 0, true, false, null, "x"] } `: true, `"s"`: true, `0`: true,
		`{"a":{"b":{}}}`: true, `[[],[{}],{"k":[]}]`: true, `"\u00e9\n\"\\\/\b\f\r\t"`: true, "\"caf\xc3\xa9 ☕\"": true,
		`"` + strings.Repeat("abcdefgh", 100) + `"`: true, `"abcdefg\"hijklmnop"`: true, `-0.0e-0`: true,
		deep(maxJSONDepth): true, deep(maxJSONDepth + 1): false,
		``: false, ` `: false, `{`: false, `}`: false, `[1,]`: false, `{"a":1,}`: false, `{"a"}`: false, `{"a":}`: false,
		`{1:2}`: false, `[1 2]`: false, `01`: false, `1.`: false, `.5`: false, `1e`: false, `+1`: false, `-`: false,
		`tru`: false, `nul`: false, `truex`: false, `{} {}`: false, `{}x`: false, `"abc`: false, `"\x"`: false,
		`"\u12"`: false, `"\u12g4"`: false, "\"a\x01b\"": false, "\"\xff\"": false, "\xef\xbb\xbf{}": false,
		"\"\xed\xa0\x80\"": false, `[1,{"a":[2,3}]`: false, `{"a":1]`: false, `[}`: false, `"` + strings.Repeat("abcdefgh", 3) + "\x1f" + `"`: false,
	}
	for doc, want := range cases {
		if got := validJSON([]byte(doc), maxJSONDepth); got != want {
			t.Errorf("validJSON(%.40q) = %v, want %v", doc, got, want)
		}
		if got := oracleValid([]byte(doc), maxJSONDepth); got != want {
			t.Errorf("oracle(%.40q) = %v, want %v: the case is wrong", doc, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c\u00e9"}]}`, `[[[[]]]]`, `"abcdefghijklmnop\"q"`, `-1.5e10`, "\"\xe2\x98\x95\"", `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := validJSON(doc, 8), oracleValid(doc, 8); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json + utf8 + depth say %v", doc, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	doc := benchEvent(1 << 20)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if !validJSON(doc, maxJSONDepth) {
			b.Fatal("invalid")
		}
	}
}
