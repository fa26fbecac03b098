package forward

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 signatures for receivers that verify them; HMAC does not rely on SHA-1 collision resistance
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signer adds outbound signature headers to one attempt.
type Signer interface {
	Sign(h http.Header, id string, ts time.Time, body []byte)
}

// HMACOptions configure the generic "hmac" signer.
type HMACOptions struct {
	Header    string // required
	Algorithm string // sha1 | sha256 (default) | sha512
	Encoding  string // hex (default) | base64 | base64url
	Prefix    string // e.g. "sha256="
}

// NewSigner makes a signer: "standard" (Standard Webhooks: webhook-id,
// webhook-timestamp, webhook-signature "v1,<base64>" over "id.ts.body";
// secret "whsec_<base64>"), "github" (X-Hub-Signature-256:
// sha256=<hex>), or "hmac" with opts.
func NewSigner(kind, secret string, opts HMACOptions) (Signer, error) {
	if secret == "" {
		return nil, errors.New("signing secret is empty")
	}
	switch kind {
	case "standard":
		encoded, ok := strings.CutPrefix(secret, "whsec_")
		key, err := base64.StdEncoding.DecodeString(encoded)
		if !ok || err != nil || len(key) == 0 {
			return nil, errors.New("standard signing secret must be whsec_ followed by base64")
		}
		return standardSigner{key: key}, nil
	case "github":
		return hmacSigner{key: []byte(secret), newHash: sha256.New, header: "X-Hub-Signature-256", prefix: "sha256=", encode: hex.EncodeToString}, nil
	case "hmac":
		if opts.Header == "" {
			return nil, errors.New("hmac signing needs a header")
		}
		if err := CheckHeaderName(opts.Header); err != nil {
			return nil, err
		}
		if err := CheckHeaderValue(opts.Prefix); err != nil {
			return nil, fmt.Errorf("prefix: %w", err)
		}
		newHash, err := hashFunc(opts.Algorithm)
		if err != nil {
			return nil, err
		}
		encode, err := encoder(opts.Encoding)
		if err != nil {
			return nil, err
		}
		return hmacSigner{key: []byte(secret), newHash: newHash, header: opts.Header, prefix: opts.Prefix, encode: encode}, nil
	default:
		return nil, fmt.Errorf("unknown signing kind %q (want standard, github or hmac)", kind)
	}
}

func hashFunc(name string) (func() hash.Hash, error) {
	switch strings.ToLower(name) {
	case "", "sha256":
		return sha256.New, nil
	case "sha1":
		return sha1.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q (want sha1, sha256 or sha512)", name)
}

func encoder(name string) (func([]byte) string, error) {
	switch strings.ToLower(name) {
	case "", "hex":
		return hex.EncodeToString, nil
	case "base64":
		return base64.StdEncoding.EncodeToString, nil
	case "base64url":
		return base64.RawURLEncoding.EncodeToString, nil
	}
	return nil, fmt.Errorf("unknown encoding %q (want hex, base64 or base64url)", name)
}

type hmacSigner struct {
	key     []byte
	newHash func() hash.Hash
	header  string
	prefix  string
	encode  func([]byte) string
}

func (s hmacSigner) Sign(h http.Header, _ string, _ time.Time, body []byte) {
	m := hmac.New(s.newHash, s.key)
	m.Write(body)
	h.Set(s.header, s.prefix+s.encode(m.Sum(nil)))
}

type standardSigner struct{ key []byte }

func (s standardSigner) Sign(h http.Header, id string, ts time.Time, body []byte) {
	unix := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(unix))
	m.Write([]byte{'.'})
	m.Write(body)
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", unix)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
}
