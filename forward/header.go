package forward

import (
	"fmt"
	"strings"
)

// CheckHeaderName returns an error unless name is a valid HTTP field name
// (an RFC 9110 token). An invalid name would make every attempt fail
// after the request is built, so it is refused when the config loads.
func CheckHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("header name is empty")
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("header name %q is not a valid HTTP field name", name)
		}
	}
	return nil
}

// CheckMethod returns an error unless m is a valid HTTP method (a token).
func CheckMethod(m string) error {
	if err := CheckHeaderName(m); err != nil {
		return fmt.Errorf("method %q is not a valid HTTP method", m)
	}
	return nil
}

// CheckHeaderValue returns an error if a configured header value holds a
// control character other than tab: Go refuses to send it, on every
// attempt.
func CheckHeaderValue(v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return fmt.Errorf("header value holds a control character")
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
