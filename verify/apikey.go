package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// apiKey accepts any of several keys from one place: a header, a query
// parameter, or an Authorization bearer token.
type apiKey struct {
	digests [][sha256.Size]byte
	header  string
	query   string
	bearer  bool
}

func newAPIKey(s Spec) (Verifier, error) {
	places := 0
	for _, set := range []bool{s.Header != "", s.Query != "", s.Bearer} {
		if set {
			places++
		}
	}
	if places > 1 {
		return nil, errors.New("api_key: choose one of header, query or bearer")
	}
	if len(s.Secrets) == 0 {
		return nil, errors.New("api_key needs at least one key")
	}
	k := &apiKey{header: s.Header, query: s.Query, bearer: s.Bearer}
	if places == 0 {
		k.header = "X-API-Key"
	}
	for _, key := range s.Secrets {
		if key == "" {
			return nil, errors.New("api_key: a key is empty")
		}
		k.digests = append(k.digests, sha256.Sum256([]byte(key)))
	}
	return k, nil
}

func (k *apiKey) Verify(r *http.Request, _ []byte) error {
	var got string
	switch {
	case k.bearer:
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
			got = strings.TrimSpace(auth[7:])
		}
	case k.query != "":
		got = r.URL.Query().Get(k.query)
	default:
		got = r.Header.Get(k.header)
	}
	if got == "" {
		return fmt.Errorf("api_key: key %w", ErrMissing)
	}
	d := sha256.Sum256([]byte(got))
	match := 0
	for i := range k.digests { // every key compared: no early exit
		match |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	if match == 1 {
		return nil
	}
	return fmt.Errorf("api_key: %w", ErrMismatch)
}
