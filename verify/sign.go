package verify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Signing is the sender's side of the presets: it signs a test request
// exactly as the provider does, so a hook can be tried before the
// provider is set up (`caddy webhook-gateway send`).

// ErrNotSignable is wrapped by Sign for presets that cannot be signed
// with the secret a hook is configured with (public-key schemes).
var ErrNotSignable = errors.New("cannot be signed with the configured secret")

// SignInput is one request to sign.
type SignInput struct {
	Method      string    // default POST
	URL         string    // where the request goes; signed by some providers
	ContentType string    // default application/json
	Body        []byte    // the exact bytes sent
	Time        time.Time // signing time; default now
	ID          string    // delivery id, for presets that send one; default a new random id
}

// SignedRequest is what to send: the headers to add, and the URL and body,
// which some schemes change (a body hash in the URL, a signature inside
// the body).
type SignedRequest struct {
	Header http.Header
	URL    string
	Body   []byte
}

// headerFormats write the signature header of presets whose header is
// structured (their Preset.Parse reads it back).
var headerFormats = map[string]func(ts, sig string) string{
	"stripe":     func(ts, sig string) string { return "t=" + ts + ",v1=" + sig },
	"calendly":   func(ts, sig string) string { return "t=" + ts + ",v1=" + sig },
	"workos":     func(ts, sig string) string { return "t=" + ts + ",v1=" + sig },
	"mux":        func(ts, sig string) string { return "t=" + ts + ",v1=" + sig },
	"sanity":     func(ts, sig string) string { return "t=" + ts + ",v1=" + sig },
	"persona":    func(ts, sig string) string { return "t=" + ts + ",v1=" + sig },
	"elevenlabs": func(ts, sig string) string { return "t=" + ts + ",v0=" + sig },
	"paddle":     func(ts, sig string) string { return "ts=" + ts + ";h1=" + sig },
	"buildkite":  func(ts, sig string) string { return "timestamp=" + ts + ",signature=" + sig },
	"recurly":    func(ts, sig string) string { return ts + "," + sig },
	"pagerduty":  func(_, sig string) string { return "v1=" + sig },
	"circleci":   func(_, sig string) string { return "v1=" + sig },
	"revolut":    func(_, sig string) string { return "v1=" + sig },
}

// svixSenders deliver through Svix, whose headers are svix-* rather than
// Standard Webhooks' webhook-*.
var svixSenders = map[string]bool{"svix": true, "clerk": true, "resend": true}

// specialSigners sign the presets whose scheme is more than a header over
// a template (the counterparts of their Extract).
var specialSigners = map[string]func(p Preset, key []byte, in *SignInput, out *SignedRequest) error{
	"twilio":  signTwilio,
	"hubspot": signHubSpot,
	"box":     signBox,
	"trello":  signTrello,
	"netlify": signNetlify,
	"vonage":  signVonage,
	"mailgun": signMailgun,
	"adyen":   signAdyen,
}

// Signable reports whether a preset can be signed with its configured
// secret, and if not, why.
func Signable(name string) (bool, string) {
	p, ok := presets[name]
	if !ok {
		return false, "unknown preset"
	}
	switch p.Algorithm {
	case "ed25519", "ecdsa-p256":
		return false, "the provider signs with its private key; the configured secret is the public key"
	case "token":
		return true, ""
	}
	if p.Extract != nil && specialSigners[name] == nil {
		return false, "no signer for this scheme"
	}
	if p.Parse != nil && headerFormats[name] == nil && p.SignatureHeader != "webhook-signature" {
		return false, "no signer for this header format"
	}
	return true, ""
}

// Sign signs in as the preset does with secret.
func Sign(preset, secret string, in SignInput) (*SignedRequest, error) {
	p, ok := presets[preset]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q", preset)
	}
	if ok, why := Signable(preset); !ok {
		return nil, fmt.Errorf("%s %w: %s", preset, ErrNotSignable, why)
	}
	if secret == "" {
		return nil, fmt.Errorf("%s: the secret is empty", preset)
	}
	if in.Method == "" {
		in.Method = http.MethodPost
	}
	if in.ContentType == "" {
		in.ContentType = "application/json"
	}
	if in.Time.IsZero() {
		in.Time = time.Now()
	}
	if in.ID == "" {
		in.ID = newDeliveryID(p)
	}
	out := &SignedRequest{Header: http.Header{}, URL: in.URL, Body: in.Body}
	if p.IDHeader != "" {
		out.Header.Set(p.IDHeader, in.ID)
	}
	if p.Algorithm == "token" {
		out.Header.Set(p.SignatureHeader, secret)
		return out, nil
	}
	key := []byte(secret)
	if p.Secret != nil {
		var err error
		if key, err = p.Secret(secret); err != nil {
			return nil, fmt.Errorf("%s: secret: %w", preset, err)
		}
	}
	if special := specialSigners[preset]; special != nil {
		if err := special(p, key, &in, out); err != nil {
			return nil, fmt.Errorf("%s: %w", preset, err)
		}
		return out, nil
	}
	return out, signTemplate(p, key, &in, out)
}

// signTemplate signs a header-over-template preset.
func signTemplate(p Preset, key []byte, in *SignInput, out *SignedRequest) error {
	newHash, err := hashFunc(p.Algorithm)
	if err != nil {
		return err
	}
	template := p.Signed
	if template == "" {
		template = "{body}"
	}
	parts, err := parseSigned(template)
	if err != nil {
		return err
	}
	ts := formatTime(in.Time, p.TimestampFormat)
	m := hmac.New(newHash, key)
	for _, part := range parts {
		switch part.kind {
		case partLiteral:
			m.Write([]byte(part.text))
		case partBody:
			m.Write(in.Body)
		case partTimestamp:
			m.Write([]byte(ts))
		case partHeader:
			// headers a scheme signs are its delivery id (Standard
			// Webhooks' webhook-id, Twitch's message id)
			out.Header.Set(part.text, in.ID)
			m.Write([]byte(in.ID))
		case partMethod:
			m.Write([]byte(in.Method))
		case partURL:
			u, err := signedURL(in.URL)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			m.Write([]byte(u))
		}
	}
	sig := encode(p.Encoding, m.Sum(nil))
	value := p.Prefix + sig
	switch {
	case headerFormats[p.Name] != nil:
		value = headerFormats[p.Name](ts, sig)
	case p.SignatureHeader == "webhook-signature":
		value = "v1," + sig
	}
	out.Header.Set(p.SignatureHeader, value)
	if p.TimestampHeader != "" {
		out.Header.Set(p.TimestampHeader, ts)
	}
	if svixSenders[p.Name] {
		for canonical, alias := range p.Aliases {
			if v := out.Header.Get(canonical); v != "" {
				out.Header.Del(canonical)
				out.Header.Set(alias, v)
			}
		}
	}
	return nil
}

// newDeliveryID makes an id in the form the provider uses where it
// matters (Standard Webhooks' msg_ prefix), else a random UUID.
func newDeliveryID(p Preset) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	if p.SignatureHeader == "webhook-signature" {
		return "msg_" + h
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// formatTime writes t as a preset's TimestampFormat says.
func formatTime(t time.Time, format string) string {
	switch format {
	case "unix_ms":
		return strconv.FormatInt(t.UnixMilli(), 10)
	case "rfc3339":
		return t.UTC().Format(time.RFC3339)
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func encode(encoding string, sum []byte) string {
	switch strings.ToLower(encoding) {
	case "base64":
		return base64.StdEncoding.EncodeToString(sum)
	case "base64url":
		return base64.RawURLEncoding.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

// signedURL is the URL as the receiving side rebuilds it: scheme, host as
// sent in the Host header, and the request URI.
func signedURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("the scheme signs the URL: give the URL the request is sent to")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("URL %q is not an absolute http(s) URL", raw)
	}
	return u.Scheme + "://" + u.Host + u.RequestURI(), nil
}

func hmacSum(newHash func() hash.Hash, key []byte, pieces ...[]byte) []byte {
	m := hmac.New(newHash, key)
	for _, piece := range pieces {
		m.Write(piece)
	}
	return m.Sum(nil)
}

// signTwilio: a JSON body is bound by a bodySHA256 query parameter and
// the URL alone is signed; a form body is signed field by field after the
// URL, sorted by name.
func signTwilio(p Preset, key []byte, in *SignInput, out *SignedRequest) error {
	newHash, _ := hashFunc(p.Algorithm)
	if _, err := signedURL(in.URL); err != nil {
		return err
	}
	u, _ := url.Parse(in.URL)
	msg := [][]byte{}
	if strings.HasPrefix(in.ContentType, "application/x-www-form-urlencoded") {
		values, err := url.ParseQuery(string(in.Body))
		if err != nil {
			return errors.New("the body is not a form")
		}
		full, _ := signedURL(u.String())
		msg = append(msg, []byte(full))
		names := make([]string, 0, len(values))
		for k := range values {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			vs := append([]string(nil), values[k]...)
			sort.Strings(vs)
			for _, v := range vs {
				msg = append(msg, []byte(k), []byte(v))
			}
		}
	} else {
		sum := sha256.Sum256(in.Body)
		q := u.Query()
		q.Set("bodySHA256", hex.EncodeToString(sum[:]))
		u.RawQuery = q.Encode()
		out.URL = u.String()
		full, _ := signedURL(out.URL)
		msg = append(msg, []byte(full))
	}
	out.Header.Set(p.SignatureHeader, encode(p.Encoding, hmacSum(newHash, key, msg...)))
	return nil
}

// signHubSpot: v3, method + URI + body + millisecond timestamp.
func signHubSpot(p Preset, key []byte, in *SignInput, out *SignedRequest) error {
	u, err := signedURL(in.URL)
	if err != nil {
		return err
	}
	ts := formatTime(in.Time, p.TimestampFormat)
	sum := hmacSum(sha256.New, key, []byte(in.Method), []byte(hubspotURI(u)), in.Body, []byte(ts))
	out.Header.Set(p.SignatureHeader, encode(p.Encoding, sum))
	out.Header.Set(p.TimestampHeader, ts)
	return nil
}

// signBox signs with the primary key only, as Box does when no secondary
// key is set.
func signBox(p Preset, key []byte, in *SignInput, out *SignedRequest) error {
	ts := formatTime(in.Time, p.TimestampFormat)
	out.Header.Set("box-delivery-id", in.ID)
	out.Header.Set("box-delivery-timestamp", ts)
	out.Header.Set("box-signature-version", "1")
	out.Header.Set("box-signature-algorithm", "HmacSHA256")
	out.Header.Set("box-signature-primary", encode(p.Encoding, hmacSum(sha256.New, key, in.Body, []byte(ts))))
	return nil
}

// signTrello: body then callback URL, HMAC-SHA1.
func signTrello(p Preset, key []byte, in *SignInput, out *SignedRequest) error {
	u, err := signedURL(in.URL)
	if err != nil {
		return err
	}
	newHash, _ := hashFunc(p.Algorithm)
	out.Header.Set(p.SignatureHeader, encode(p.Encoding, hmacSum(newHash, key, in.Body, []byte(u))))
	return nil
}

// hs256 makes a compact JWS with HS256.
func hs256(key []byte, claims map[string]any) (string, error) {
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	signing := head + "." + base64.RawURLEncoding.EncodeToString(c)
	return signing + "." + base64.RawURLEncoding.EncodeToString(hmacSum(sha256.New, key, []byte(signing))), nil
}

// signNetlify: a JWS whose iss is netlify and whose sha256 claim binds the
// body.
func signNetlify(_ Preset, key []byte, in *SignInput, out *SignedRequest) error {
	sum := sha256.Sum256(in.Body)
	token, err := hs256(key, map[string]any{"iss": "netlify", "sha256": hex.EncodeToString(sum[:])})
	if err != nil {
		return err
	}
	out.Header.Set("X-Webhook-Signature", token)
	return nil
}

// signVonage: a bearer JWT with iat, jti and the body's payload_hash.
func signVonage(_ Preset, key []byte, in *SignInput, out *SignedRequest) error {
	claims := map[string]any{"iat": in.Time.Unix(), "jti": in.ID}
	if len(in.Body) > 0 {
		sum := sha256.Sum256(in.Body)
		claims["payload_hash"] = hex.EncodeToString(sum[:])
	}
	token, err := hs256(key, claims)
	if err != nil {
		return err
	}
	out.Header.Set("Authorization", "Bearer "+token)
	return nil
}

// signMailgun puts the signature object (timestamp, token, signature)
// into a JSON body, as Mailgun's webhooks carry it.
func signMailgun(_ Preset, key []byte, in *SignInput, out *SignedRequest) error {
	if !gjson.ValidBytes(in.Body) || !gjson.ParseBytes(in.Body).IsObject() {
		return errors.New("the signature goes inside the body, which must be a JSON object")
	}
	ts := strconv.FormatInt(in.Time.Unix(), 10)
	token := strings.ReplaceAll(in.ID, "-", "")
	sig := hex.EncodeToString(hmacSum(sha256.New, key, []byte(ts), []byte(token)))
	body, err := sjson.SetBytes(append([]byte(nil), in.Body...), "signature", map[string]string{"timestamp": ts, "token": token, "signature": sig})
	if err != nil {
		return err
	}
	out.Body = body
	return nil
}

// signAdyen signs every NotificationRequestItem of the body into its
// additionalData.hmacSignature.
func signAdyen(p Preset, key []byte, in *SignInput, out *SignedRequest) error {
	items := gjson.GetBytes(in.Body, "notificationItems")
	if !gjson.ValidBytes(in.Body) || !items.IsArray() || len(items.Array()) == 0 {
		return errors.New("the signatures go inside the body, which must hold notificationItems")
	}
	body := append([]byte(nil), in.Body...)
	for i, item := range items.Array() {
		n := item.Get("NotificationRequestItem")
		if !n.IsObject() {
			return fmt.Errorf("notificationItems.%d has no NotificationRequestItem", i)
		}
		var msg []byte
		for j, f := range adyenFields {
			if j > 0 {
				msg = append(msg, ':')
			}
			switch v := n.Get(f); v.Type {
			case gjson.String:
				msg = append(msg, v.Str...)
			case gjson.Number, gjson.True, gjson.False:
				msg = append(msg, v.Raw...)
			}
		}
		var err error
		path := "notificationItems." + strconv.Itoa(i) + ".NotificationRequestItem.additionalData.hmacSignature"
		if body, err = sjson.SetBytes(body, path, encode(p.Encoding, hmacSum(sha256.New, key, msg))); err != nil {
			return err
		}
	}
	out.Body = body
	return nil
}
