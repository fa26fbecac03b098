package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"
)

// duplicateKey reports whether an object of the JSON document doc holds
// a key twice, keys compared as parsers read them (escapes decoded:
// "a" and "\u0061" are one key). Parsers disagree on which of two
// occurrences counts (gjson reads the first, many decoders the last),
// so a signature over fields read by one can vouch for values another
// never sees. doc must be valid JSON; the scan is one pass that
// allocates only for escaped keys and for its stacks.
func duplicateKey(doc []byte) bool {
	type frame struct {
		object bool
		start  int // index of the object's first key in keys
	}
	var stackBuf [16]frame
	var keysBuf [32][]byte
	stack, keys := stackBuf[:0], keysBuf[:0]
	expectKey := false
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '{':
			stack = append(stack, frame{object: true, start: len(keys)})
			expectKey = true
		case '[':
			stack = append(stack, frame{})
			expectKey = false
		case '}', ']':
			if len(stack) == 0 {
				return false
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.object {
				if repeated(keys[top.start:]) {
					return true
				}
				keys = keys[:top.start]
			}
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case '"':
			end, escaped := stringEnd(doc, i)
			if end >= len(doc) {
				return false // unterminated: not JSON, refused elsewhere
			}
			if expectKey {
				key := doc[i+1 : end]
				if escaped || !utf8.Valid(key) {
					var s string
					if json.Unmarshal(doc[i:end+1], &s) != nil {
						return true // not a key any parser reads alike
					}
					key = []byte(s)
				}
				keys = append(keys, key)
				expectKey = false
			}
			i = end
		}
	}
	return false
}

// stringEnd returns the index of the quote closing the string that opens
// at doc[start] (len(doc) if none), and whether it holds an escape. It
// jumps from quote to quote, stepping over escaped ones.
func stringEnd(doc []byte, start int) (int, bool) {
	escaped := false
	for i := start + 1; i <= len(doc); {
		q := bytes.IndexByte(doc[i:], '"')
		if q < 0 {
			break
		}
		b := bytes.IndexByte(doc[i:i+q], '\\')
		if b < 0 {
			return i + q, escaped
		}
		escaped = true
		i += b + 2 // past the backslash and the byte it escapes
	}
	return len(doc), escaped
}

// repeated reports whether keys holds one key twice: pairwise for the
// small objects webhooks send, sorted beyond that.
func repeated(keys [][]byte) bool {
	if len(keys) <= 16 {
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if bytes.Equal(keys[i], keys[j]) {
					return true
				}
			}
		}
		return false
	}
	slices.SortFunc(keys, bytes.Compare)
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(keys[i-1], keys[i]) {
			return true
		}
	}
	return false
}

// noDuplicateKeys wraps a verifier for `reject_duplicate_keys`: an
// authentic JSON body that holds a key twice is refused, since what the
// signature vouched for depends on which occurrence a reader keeps.
type noDuplicateKeys struct {
	Verifier
	method string
}

func (v noDuplicateKeys) Verify(r *http.Request, body []byte) error {
	if err := v.Verifier.Verify(r, body); err != nil {
		return err
	}
	if looksJSON(body) && duplicateKey(body) {
		return fmt.Errorf("%s: %w", v.method, errDuplicateKey)
	}
	return nil
}

// looksJSON says whether body opens an object or array; other bodies
// (forms) are not checked, and invalid JSON is refused by the handler.
func looksJSON(body []byte) bool {
	body = bytes.TrimLeft(body, " \t\r\n")
	return len(body) > 0 && (body[0] == '{' || body[0] == '[')
}

// errDuplicateKey refuses a body whose meaning depends on the parser.
var errDuplicateKey = fmt.Errorf("a JSON object of the body holds a key twice: %w", ErrMalformed)
