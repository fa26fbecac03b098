package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // providers sign with HMAC-SHA1 (Intercom, Twilio, Trello...); HMAC does not rely on SHA-1 collision resistance
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds on hostile headers.
const (
	maxHeaderLen  = 8 << 10
	maxCandidates = 16
	// An ASN.1 ECDSA P-256 signature is at most 72 bytes (two 33-byte
	// integers and their framing); anything longer is not one.
	maxECDSASigLen = 72
)

// Preset describes a provider's signature scheme as data. Only where a
// scheme truly differs does it carry a function (Parse, Check).
type Preset struct {
	Name     string
	Docs     string // the provider's documentation of the scheme
	IDHeader string // delivery id header, for the event id

	SignatureHeader string
	// Aliases are alternative names of headers this scheme reads, tried
	// when the canonical one is absent (Svix's svix-* for webhook-*).
	Aliases map[string]string

	// Algorithm is sha1, sha256 or sha512 for HMAC; "ed25519" for a
	// public key signature (secrets are hex public keys unless Secret
	// decodes them); "ecdsa-p256" for ECDSA P-256 over SHA-256 with an
	// ASN.1 signature (secrets are base64 DER public keys); "token" when
	// the header simply carries the secret.
	Algorithm string
	Encoding  string // hex, base64, base64url
	Prefix    string // before each encoded signature, e.g. "sha256="

	// Parse splits a structured signature header into its timestamp and
	// candidate signatures (already without prefixes).
	Parse func(value string) (timestamp string, sigs []string, ok bool)

	TimestampHeader string
	// TimestampFormat is how the timestamp is written: "unix" (seconds,
	// the default), "unix_ms" (milliseconds) or "rfc3339".
	TimestampFormat string
	// Signed is the signed-content template: literal text with {body},
	// {timestamp}, {header.<Name>}, {method}, {url}.
	Signed string
	// Secret decodes a configured secret into the HMAC key, or into the
	// raw Ed25519 public key.
	Secret func(string) ([]byte, error)
	// Extract, for schemes that are not a signature header over a
	// template (signatures inside the body, signed form fields, a
	// canonical request, a JWT), reads the signatures and what they sign
	// from the request; every Signed returned must match. With Extract,
	// SignatureHeader, TimestampHeader and Signed only document the
	// scheme. Its errors wrap the sentinel errors and never carry request
	// bytes.
	Extract func(r *http.Request, body []byte) ([]Signed, error)
	// Check runs after the signature matched (e.g. a timestamp inside the
	// body).
	Check func(body []byte, tolerance time.Duration, now time.Time) error
	// Notes explains, for docs/providers.md, what the data above does not
	// say (a custom Parse or Check, a key format).
	Notes string
	// ExtraHeaders are the headers an Extract reads besides
	// SignatureHeader and TimestampHeader (Box's secondary signature).
	ExtraHeaders []string
}

// Signed is one signature found by a Preset's Extract.
type Signed struct {
	// Timestamp, when not empty, is checked against the tolerance in the
	// Preset's TimestampFormat.
	Timestamp string
	// NotAfter and NotBefore, when not empty, are unix seconds (a JWT's exp
	// and nbf): the request is refused after NotAfter or before NotBefore,
	// with the tolerance as leeway.
	NotAfter, NotBefore string
	// Signatures are the candidates, encoded as the Preset's Encoding says.
	Signatures []string
	// Messages are the signed contents to try, each written piece by
	// piece; more than one where a sender is inconsistent (Twilio signs
	// URLs with and without the default port).
	Messages []Message
}

// Message is signed content in pieces, so a body is never copied.
type Message [][]byte

type partKind uint8

const (
	partLiteral partKind = iota
	partBody
	partTimestamp
	partHeader
	partMethod
	partURL
)

type signedPart struct {
	kind partKind
	text string // literal text, or the header name
}

// scheme is a provisioned Preset.
type scheme struct {
	p         Preset
	pubkeys   []ed25519.PublicKey
	ecdsaKeys []*ecdsa.PublicKey
	tokens    [][sha256.Size]byte
	newHash   func() hash.Hash
	macs      []*sync.Pool // per secret: keyed HMAC states, reused across requests
	sigLen    int
	decode    func(string) ([]byte, error)
	parts     []signedPart
	stamped   bool
	tolerance time.Duration
	now       func() time.Time
}

func (p Preset) build(s Spec) (Verifier, error) {
	if len(s.Secrets) == 0 {
		return nil, fmt.Errorf("%s needs at least one secret", p.Name)
	}
	sc := &scheme{p: p, tolerance: s.Tolerance, now: s.Now}
	for i, secret := range s.Secrets {
		if secret == "" {
			return nil, fmt.Errorf("%s: secret #%d is empty", p.Name, i+1)
		}
	}
	switch p.Algorithm {
	case "token":
		for _, secret := range s.Secrets {
			sc.tokens = append(sc.tokens, sha256.Sum256([]byte(secret)))
		}
	case "ed25519":
		for i, secret := range s.Secrets {
			var key []byte
			var err error
			if p.Secret != nil {
				key, err = p.Secret(secret)
			} else {
				key, err = hex.DecodeString(secret)
			}
			if err != nil || len(key) != ed25519.PublicKeySize {
				if p.Secret != nil {
					return nil, fmt.Errorf("%s: public key #%d must be %d bytes, encoded as the preset documents", p.Name, i+1, ed25519.PublicKeySize)
				}
				return nil, fmt.Errorf("%s: public key #%d must be %d hex-encoded bytes", p.Name, i+1, ed25519.PublicKeySize)
			}
			sc.pubkeys = append(sc.pubkeys, ed25519.PublicKey(key))
		}
		sc.sigLen = ed25519.SignatureSize
	case "ecdsa-p256":
		for i, secret := range s.Secrets {
			key, err := parseECDSAKey(secret)
			if err != nil {
				return nil, fmt.Errorf("%s: public key #%d: %w", p.Name, i+1, err)
			}
			sc.ecdsaKeys = append(sc.ecdsaKeys, key)
		}
	default:
		var err error
		sc.newHash, err = hashFunc(p.Algorithm)
		if err != nil {
			return nil, err
		}
		sc.sigLen = sc.newHash().Size()
		for i, secret := range s.Secrets {
			key := []byte(secret)
			if p.Secret != nil {
				if key, err = p.Secret(secret); err != nil {
					return nil, fmt.Errorf("%s: secret #%d: %w", p.Name, i+1, err)
				}
			}
			newHash := sc.newHash
			sc.macs = append(sc.macs, &sync.Pool{New: func() any { return hmac.New(newHash, key) }})
		}
	}
	if p.Algorithm != "token" {
		var err error
		if sc.decode, err = decoder(p.Encoding); err != nil {
			return nil, err
		}
		signed := p.Signed
		if signed == "" {
			signed = "{body}"
		}
		if p.Extract == nil {
			if sc.parts, err = parseSigned(signed); err != nil {
				return nil, err
			}
		}
	}
	for _, part := range sc.parts {
		if part.kind == partTimestamp {
			sc.stamped = true
		}
	}
	if p.TimestampHeader != "" {
		sc.stamped = true
	}
	return sc, nil
}

// parseECDSAKey decodes a base64 DER (PKIX) P-256 public key.
func parseECDSAKey(secret string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
	if err != nil {
		return nil, errors.New("must be a base64 DER public key")
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("must be a base64 DER public key")
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("must be an ECDSA P-256 public key")
	}
	return key, nil
}

// sigSizeOK says whether a decoded signature has the length the
// algorithm produces.
func (sc *scheme) sigSizeOK(n int) bool {
	if sc.p.Algorithm == "ecdsa-p256" {
		return n >= 8 && n <= maxECDSASigLen
	}
	return n == sc.sigLen
}

// mac returns a keyed HMAC state for key i, ready to write. The states are
// pooled: the key schedule is paid once, not per request.
func (sc *scheme) mac(i int) hash.Hash {
	m := sc.macs[i].Get().(hash.Hash)
	m.Reset()
	return m
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

// decoder decodes a signature; base64 forms accept padded and unpadded.
func decoder(name string) (func(string) ([]byte, error), error) {
	switch strings.ToLower(name) {
	case "", "hex":
		return hex.DecodeString, nil
	case "base64":
		return func(s string) ([]byte, error) {
			if strings.HasSuffix(s, "=") {
				return base64.StdEncoding.Strict().DecodeString(s)
			}
			return base64.RawStdEncoding.Strict().DecodeString(s)
		}, nil
	case "base64url":
		return func(s string) ([]byte, error) {
			if strings.HasSuffix(s, "=") {
				return base64.URLEncoding.Strict().DecodeString(s)
			}
			return base64.RawURLEncoding.Strict().DecodeString(s)
		}, nil
	}
	return nil, fmt.Errorf("unknown encoding %q (want hex, base64 or base64url)", name)
}

// parseSigned compiles a signed-content template.
func parseSigned(t string) ([]signedPart, error) {
	var parts []signedPart
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			parts = append(parts, signedPart{kind: partLiteral, text: t})
			break
		}
		if i > 0 {
			parts = append(parts, signedPart{kind: partLiteral, text: t[:i]})
		}
		end := strings.IndexByte(t[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("signed template: unclosed {")
		}
		key := t[i+1 : i+end]
		switch {
		case key == "body":
			parts = append(parts, signedPart{kind: partBody})
		case key == "timestamp":
			parts = append(parts, signedPart{kind: partTimestamp})
		case key == "method":
			parts = append(parts, signedPart{kind: partMethod})
		case key == "url":
			parts = append(parts, signedPart{kind: partURL})
		case strings.HasPrefix(key, "header.") && len(key) > len("header."):
			parts = append(parts, signedPart{kind: partHeader, text: key[len("header."):]})
		default:
			return nil, fmt.Errorf("signed template: unknown placeholder {%s} (want body, timestamp, method, url or header.<Name>)", key)
		}
		t = t[i+end+1:]
	}
	return parts, nil
}

// get reads a header, or its alias when absent.
func (sc *scheme) get(r *http.Request, name string) string {
	if v := r.Header.Get(name); v != "" {
		return v
	}
	if alias, ok := sc.p.Aliases[strings.ToLower(name)]; ok {
		return r.Header.Get(alias)
	}
	return ""
}

func (sc *scheme) Verify(r *http.Request, body []byte) error {
	name := sc.p.Name
	if sc.p.Extract != nil {
		return sc.verifyExtracted(r, body)
	}
	value := sc.get(r, sc.p.SignatureHeader)
	if value == "" {
		return fmt.Errorf("%s: signature header %s %w", name, sc.p.SignatureHeader, ErrMissing)
	}
	if len(value) > maxHeaderLen {
		return fmt.Errorf("%s: signature header too long: %w", name, ErrMalformed)
	}
	if sc.p.Algorithm == "token" {
		d := sha256.Sum256([]byte(value))
		match := 0
		for i := range sc.tokens {
			match |= subtle.ConstantTimeCompare(d[:], sc.tokens[i][:])
		}
		if match != 1 {
			return fmt.Errorf("%s: %w", name, ErrMismatch)
		}
		return nil
	}

	var ts string
	var sigs []string
	if sc.p.Parse != nil {
		var ok bool
		if ts, sigs, ok = sc.p.Parse(value); !ok {
			return fmt.Errorf("%s: signature header %w", name, ErrMalformed)
		}
	} else {
		sig, ok := strings.CutPrefix(strings.TrimSpace(value), sc.p.Prefix)
		if !ok {
			return fmt.Errorf("%s: signature prefix %w", name, ErrMalformed)
		}
		sigs = []string{sig}
	}
	if sc.p.TimestampHeader != "" {
		if ts = sc.get(r, sc.p.TimestampHeader); ts == "" {
			return fmt.Errorf("%s: timestamp header %s %w", name, sc.p.TimestampHeader, ErrMissing)
		}
	}
	if sc.stamped {
		if err := sc.checkTime(ts); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(sigs) == 0 || len(sigs) > maxCandidates {
		return fmt.Errorf("%s: %d signatures: %w", name, len(sigs), ErrMalformed)
	}
	var cands [maxCandidates][]byte
	n := 0
	for _, s := range sigs {
		if b, err := sc.decode(s); err == nil && sc.sigSizeOK(len(b)) {
			cands[n] = b
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s: no signature of the expected encoding and length: %w", name, ErrMalformed)
	}

	match := sc.matches(cands[:n], func(w io.Writer) { sc.writeSigned(w, r, ts, body) })
	if !match {
		return fmt.Errorf("%s: no secret matched: %w", name, ErrMismatch)
	}
	if sc.p.Check != nil {
		if err := sc.p.Check(body, sc.tolerance, sc.now()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// verifyExtracted verifies a scheme whose signatures and signed content
// its Preset's Extract finds.
func (sc *scheme) verifyExtracted(r *http.Request, body []byte) error {
	name := sc.p.Name
	found, err := sc.p.Extract(r, body)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(found) == 0 || len(found) > maxCandidates {
		return fmt.Errorf("%s: %d signatures: %w", name, len(found), ErrMalformed)
	}
	for _, f := range found {
		if f.Timestamp != "" {
			if err := sc.checkTime(f.Timestamp); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if err := sc.checkValidity(f.NotBefore, f.NotAfter); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, f := range found {
		if len(f.Signatures) == 0 || len(f.Signatures) > maxCandidates || len(f.Messages) == 0 || len(f.Messages) > maxCandidates {
			return fmt.Errorf("%s: signature %w", name, ErrMalformed)
		}
		var cands [maxCandidates][]byte
		n := 0
		for _, s := range f.Signatures {
			if len(s) > maxHeaderLen {
				continue
			}
			if b, err := sc.decode(s); err == nil && sc.sigSizeOK(len(b)) {
				cands[n] = b
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("%s: no signature of the expected encoding and length: %w", name, ErrMalformed)
		}
		if !sc.matchMessages(cands[:n], f.Messages) {
			return fmt.Errorf("%s: no secret matched: %w", name, ErrMismatch)
		}
	}
	if sc.p.Check != nil {
		if err := sc.p.Check(body, sc.tolerance, sc.now()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// matchMessages tries every key on every message against every
// candidate, without stopping at the first match.
func (sc *scheme) matchMessages(cands [][]byte, msgs []Message) bool {
	match := false
	for _, msg := range msgs {
		if sc.matches(cands, func(w io.Writer) {
			for _, piece := range msg {
				_, _ = w.Write(piece)
			}
		}) {
			match = true
		}
	}
	return match
}

// matches tries every key against every candidate over the signed content
// that write produces, without stopping at the first match (equal work
// whichever secret, if any, matched).
func (sc *scheme) matches(cands [][]byte, write func(w io.Writer)) bool {
	match := false
	switch sc.p.Algorithm {
	case "ed25519":
		var msg bytesWriter
		write(&msg)
		for _, key := range sc.pubkeys {
			for _, c := range cands {
				if ed25519.Verify(key, msg.buf, c) {
					match = true
				}
			}
		}
	case "ecdsa-p256":
		h := sha256.New()
		write(h)
		var sum [sha256.Size]byte
		digest := h.Sum(sum[:0])
		for _, key := range sc.ecdsaKeys {
			for _, c := range cands {
				if ecdsa.VerifyASN1(key, digest, c) {
					match = true
				}
			}
		}
	default:
		var sum [sha512.Size]byte
		for i := range sc.macs {
			m := sc.mac(i)
			write(m)
			mac := m.Sum(sum[:0])
			sc.macs[i].Put(m)
			for _, c := range cands {
				if hmac.Equal(mac, c) {
					match = true
				}
			}
		}
	}
	return match
}

// checkTime accepts a timestamp within tolerance of now, in either
// direction.
func (sc *scheme) checkTime(ts string) error {
	var t time.Time
	switch sc.p.TimestampFormat {
	case "", "unix":
		secs, err := parseUnix(ts)
		if err != nil {
			return err
		}
		t = time.Unix(secs, 0)
	case "unix_ms":
		if len(ts) > 15 {
			return fmt.Errorf("timestamp %w", ErrMalformed)
		}
		ms, err := parseUnix(ts)
		if err != nil {
			return err
		}
		t = time.UnixMilli(ms)
	case "rfc3339":
		if ts == "" {
			return fmt.Errorf("timestamp %w", ErrMissing)
		}
		var err error
		if len(ts) > 64 {
			return fmt.Errorf("timestamp %w", ErrMalformed)
		}
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return fmt.Errorf("timestamp %w", ErrMalformed)
		}
	default:
		return fmt.Errorf("timestamp format %q %w", sc.p.TimestampFormat, ErrMalformed)
	}
	return within(t, sc.now(), sc.tolerance)
}

// checkValidity refuses a request before notBefore or after notAfter
// (unix seconds, either may be empty), with the tolerance as leeway.
func (sc *scheme) checkValidity(notBefore, notAfter string) error {
	now := sc.now()
	if notAfter != "" {
		secs, err := parseUnix(notAfter)
		if err != nil {
			return fmt.Errorf("expiry: %w", err)
		}
		if now.After(time.Unix(secs, 0).Add(sc.tolerance)) {
			return fmt.Errorf("expired: %w", ErrTimestamp)
		}
	}
	if notBefore != "" {
		secs, err := parseUnix(notBefore)
		if err != nil {
			return fmt.Errorf("not-before: %w", err)
		}
		if now.Add(sc.tolerance).Before(time.Unix(secs, 0)) {
			return fmt.Errorf("not yet valid: %w", ErrTimestamp)
		}
	}
	return nil
}

func parseUnix(ts string) (int64, error) {
	if ts == "" {
		return 0, fmt.Errorf("timestamp %w", ErrMissing)
	}
	if len(ts) > 15 {
		return 0, fmt.Errorf("timestamp %w", ErrMalformed)
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return 0, fmt.Errorf("timestamp %w", ErrMalformed)
		}
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %w", ErrMalformed)
	}
	return secs, nil
}

// within compares t with now ± tolerance directly: a Duration between
// them saturates (and its negation overflows) for far-off times.
func within(t, now time.Time, tolerance time.Duration) error {
	if t.Before(now.Add(-tolerance)) || t.After(now.Add(tolerance)) {
		return ErrTimestamp
	}
	return nil
}

// writeSigned writes the signed content piece by piece, so the body is
// never copied. w is a hash or a bytesWriter, whose writes cannot fail.
func (sc *scheme) writeSigned(w io.Writer, r *http.Request, ts string, body []byte) {
	for _, p := range sc.parts {
		switch p.kind {
		case partLiteral:
			_, _ = w.Write([]byte(p.text))
		case partBody:
			_, _ = w.Write(body)
		case partTimestamp:
			_, _ = w.Write([]byte(ts))
		case partHeader:
			_, _ = w.Write([]byte(sc.get(r, p.text)))
		case partMethod:
			_, _ = w.Write([]byte(r.Method))
		case partURL:
			_, _ = w.Write([]byte(requestURL(r)))
		}
	}
}

// bytesWriter collects the signed content for ed25519, which signs whole
// messages.
type bytesWriter struct{ buf []byte }

func (b *bytesWriter) Write(p []byte) (int, error) { b.buf = append(b.buf, p...); return len(p), nil }

// requestURL is the URL the sender called, as it would have signed it.
func requestURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// newRecipe builds the generic "hmac" verifier from a Spec.
func newRecipe(s Spec) (Verifier, error) {
	if s.Header == "" {
		return nil, errors.New("hmac needs a header")
	}
	if strings.Contains(s.Signed, "{timestamp}") && s.TimestampHeader == "" {
		return nil, errors.New("hmac: a signed template with {timestamp} needs a timestamp_header")
	}
	if s.TimestampHeader != "" && !strings.Contains(s.Signed, "{timestamp}") &&
		!strings.Contains(strings.ToLower(s.Signed), "{header."+strings.ToLower(s.TimestampHeader)+"}") {
		return nil, errors.New("hmac: timestamp_header is set but signed has no {timestamp}: an unsigned timestamp " +
			"can be replaced, so a captured request would replay forever with a fresh one; add {timestamp} to signed " +
			`(e.g. "{timestamp}.{body}") as the sender signs it`)
	}
	return Preset{
		Name:            "hmac",
		SignatureHeader: s.Header,
		Algorithm:       strings.ToLower(s.Algorithm),
		Encoding:        s.Encoding,
		Prefix:          s.Prefix,
		TimestampHeader: s.TimestampHeader,
		Signed:          s.Signed,
	}.build(s)
}
