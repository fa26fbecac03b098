package caddymodule

import (
	"encoding/binary"
	"unicode/utf8"
)

// validJSON reports whether doc is exactly one JSON value (RFC 8259) with
// surrounding whitespace, valid UTF-8, nested at most maxDepth levels. It
// is one pass with no allocation; string contents are skipped eight bytes
// at a time while they are plain ASCII, so long values cost little more
// than reading them.
func validJSON(doc []byte, maxDepth int) bool {
	s := scanner{doc: doc}
	s.space()
	if !s.value(maxDepth) {
		return false
	}
	s.space()
	return s.i == len(doc)
}

type scanner struct {
	doc []byte
	i   int
}

func (s *scanner) space() {
	for s.i < len(s.doc) {
		switch s.doc[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value. Containers are scanned iteratively with a stack
// of kinds kept in a bit set, so hostile nesting cannot grow the Go stack.
func (s *scanner) value(maxDepth int) bool {
	var stack [maxJSONDepth/64 + 1]uint64 // bit set: 1 = object, 0 = array
	if maxDepth > maxJSONDepth {
		maxDepth = maxJSONDepth
	}
	depth := 0
	for {
		// a value
		if s.i >= len(s.doc) {
			return false
		}
		switch c := s.doc[s.i]; c {
		case '{', '[':
			if depth >= maxDepth {
				return false
			}
			s.i++
			s.space()
			if s.i < len(s.doc) && (c == '{' && s.doc[s.i] == '}' || c == '[' && s.doc[s.i] == ']') {
				s.i++ // empty: a complete value
				break
			}
			if c == '{' {
				stack[depth/64] |= 1 << (depth % 64)
				depth++
				if !s.key() {
					return false
				}
			} else {
				stack[depth/64] &^= 1 << (depth % 64)
				depth++
			}
			continue
		case '"':
			if !s.str() {
				return false
			}
		case 't':
			if !s.lit("true") {
				return false
			}
		case 'f':
			if !s.lit("false") {
				return false
			}
		case 'n':
			if !s.lit("null") {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		// after a value: close containers or go to the next element
		for {
			if depth == 0 {
				return true
			}
			s.space()
			if s.i >= len(s.doc) {
				return false
			}
			object := stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			c := s.doc[s.i]
			if c == ',' {
				s.i++
				s.space()
				if object && !s.key() {
					return false
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				s.i++
				depth--
				continue
			}
			return false
		}
	}
}

// key scans `"name" :` and the space after it.
func (s *scanner) key() bool {
	if s.i >= len(s.doc) || s.doc[s.i] != '"' || !s.str() {
		return false
	}
	s.space()
	if s.i >= len(s.doc) || s.doc[s.i] != ':' {
		return false
	}
	s.i++
	s.space()
	return true
}

func (s *scanner) lit(word string) bool {
	if len(s.doc)-s.i < len(word) || string(s.doc[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain reports whether none of the eight bytes of x is a quote, a
// backslash, a control character or non-ASCII.
func plain(x uint64) bool {
	quote := x ^ (lsb * '"')
	slash := x ^ (lsb * '\\')
	// a byte is zero in v: (v - lsb) &^ v & msb; a byte is below 0x20:
	// (x - 0x20*lsb) &^ x & msb.
	special := (quote-lsb)&^quote | (slash-lsb)&^slash | (x-lsb*0x20)&^x | x
	return special&msb == 0
}

// str scans a string starting at its opening quote.
func (s *scanner) str() bool {
	doc := s.doc
	i := s.i + 1
	for {
		for i+8 <= len(doc) && plain(binary.LittleEndian.Uint64(doc[i:])) {
			i += 8
		}
		if i >= len(doc) {
			return false
		}
		c := doc[i]
		switch {
		case c == '"':
			s.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(doc) {
				return false
			}
			switch doc[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(doc) {
					return false
				}
				for _, h := range doc[i+2 : i+6] {
					if (h < '0' || h > '9') && (h < 'a' || h > 'f') && (h < 'A' || h > 'F') {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError && n <= 1 {
				return false
			}
			i += n
		}
	}
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	doc, i := s.doc, s.i
	if i < len(doc) && doc[i] == '-' {
		i++
	}
	switch {
	case i < len(doc) && doc[i] == '0':
		i++
	case i < len(doc) && doc[i] >= '1' && doc[i] <= '9':
		i = digits(doc, i)
	default:
		return false
	}
	if i < len(doc) && doc[i] == '.' {
		if i = digits(doc, i+1); i < 0 {
			return false
		}
	}
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		if i = digits(doc, i); i < 0 {
			return false
		}
	}
	s.i = i
	return true
}

// digits skips one or more digits from i and returns the index after
// them, or -1 when there is none.
func digits(doc []byte, i int) int {
	start := i
	for i < len(doc) && doc[i] >= '0' && doc[i] <= '9' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}
