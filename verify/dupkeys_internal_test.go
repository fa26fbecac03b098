package verify

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// referenceDuplicateKey finds repeated keys with encoding/json's
// tokenizer, independently of duplicateKey.
func referenceDuplicateKey(doc []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: v == '{', keys: map[string]bool{}, key: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

func TestDuplicateKey(t *testing.T) {
	var many, manyDup strings.Builder
	many.WriteString("{")
	for i := range 40 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strconv.Itoa(i) + `":{"k1":1}`)
	}
	manyDup.WriteString(many.String() + `,"k17":0}`)
	many.WriteString("}")
	for doc, want := range map[string]bool{
		many.String():                       false,
		manyDup.String():                    true,
		`{"a":1,"b":{"a":1},"a":2}`:         true,
		`{"a":1,"b":{"a":1}}`:               false,
		`{"\ud83d\ude00":1,"😀":2}`:          true,
		`{"\ud800":1,"\udc00":2}`:           true, // both read as U+FFFD
		"{\"\xff\":1,\"\xfe\":2}":           true, // both read as U+FFFD
		`{"a":"}","b":"{\"a\":1}","c":"a"}`: false,
		`{}`:                                false,
		`[{},{},[]]`:                        false,
		`"a"`:                               false,
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000):       false,
		strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat(`}`, 5000): false,
	} {
		if got := duplicateKey([]byte(doc)); got != want {
			t.Errorf("%.60s: %v, want %v", doc, got, want)
		}
	}
	for _, doc := range []string{`{"a":1,"a`, `{"a`, `"`, `}}]]`, `{"a":1}}`, `,,,"a"`} {
		duplicateKey([]byte(doc)) // not JSON: any answer, never a panic
	}
}

// FuzzDuplicateKey compares duplicateKey with encoding/json's reading on
// valid documents; on any input it must not panic.
func FuzzDuplicateKey(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"a":2}`, `{"a":{"a":1}}`, `[{"a":1},{"a":1}]`, `{"\u0061":1,"a":2}`,
		`{"a\\":1,"a":2}`, `{"a":"\"","b":"\\"}`, `{"x":[1,{"y":[],"y":{}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got := duplicateKey(doc)
		if !json.Valid(doc) {
			return
		}
		if want := referenceDuplicateKey(doc); got != want {
			t.Fatalf("%q: %v, encoding/json reads %v", doc, got, want)
		}
	})
}

// BenchmarkDuplicateKey scans a key-heavy document: 64 KiB of objects of
// ten short keys each, the worst common shape.
func BenchmarkDuplicateKey(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("[")
	for i := 0; doc.Len() < 64<<10; i++ {
		if i > 0 {
			doc.WriteString(",")
		}
		doc.WriteString(`{"id":` + strconv.Itoa(i) + `,"login":"octocat","node_id":"MDQ6","type":"User","site_admin":false,` +
			`"url":"https://api.github.com/users/octocat","name":"The \"Octo\" cat","score":1.5,"tags":["a","b"],"more":{"x":null}}`)
	}
	doc.WriteString("]")
	body := []byte(doc.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if duplicateKey(body) {
			b.Fatal("duplicate found")
		}
	}
}
