package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Providers whose schemes need more than a header over a template: the
// request URL and form fields signed (Twilio, Square, Trello, HubSpot),
// signatures inside the body (Mailgun, Adyen), two signature headers
// (Box), JWTs (Netlify, Vonage), public keys (SendGrid's ECDSA, Telnyx's
// Ed25519).
func init() {
	register(
		Preset{
			Name: "twilio", Docs: "https://www.twilio.com/docs/usage/webhooks/webhooks-security#validating-signatures-from-twilio",
			SignatureHeader: "X-Twilio-Signature", Algorithm: "sha1", Encoding: "base64",
			Signed:  "{url}{sorted form fields as name+value}",
			Extract: twilioExtract,
			Notes: "The secret is the account's auth token. Form posts sign the URL followed by every field, sorted by name; " +
				"JSON posts sign the URL alone, whose bodySHA256 query parameter must be the hex SHA-256 of the body. " +
				"The URL is the one the request arrived on, tried with and without the default port as Twilio's SDKs do. " +
				"A repeated field is signed with each distinct value, sorted (as twilio-node); twilio-go's first-value form is refused, since it leaves appended values unsigned.",
		},
		Preset{
			Name: "square", Docs: "https://developer.squareup.com/docs/webhooks/step3validate",
			SignatureHeader: "x-square-hmacsha256-signature", Algorithm: "sha256", Encoding: "base64",
			Signed: "{url}{body}",
			Notes:  "The secret is the subscription's signature key; the URL signed is the one the request arrived on, which must be the notification URL.",
		},
		Preset{
			Name: "mailgun", Docs: "https://documentation.mailgun.com/docs/mailgun/user-manual/events/webhooks#securing-webhooks",
			SignatureHeader: "body: signature.signature", Algorithm: "sha256", Encoding: "hex",
			TimestampHeader: "body: signature.timestamp",
			Signed:          "{signature.timestamp}{signature.token}", Extract: mailgunExtract,
			Notes: "The secret is the HTTP webhook signing key. The signature, timestamp (unix seconds, checked) and token travel in the body: " +
				"the signature object of a JSON body, or the fields of a form body, chosen by Content-Type. " +
				"The event data itself is not signed; deduplicate on the token to refuse replays within the tolerance. " +
				"A JSON body holding a key twice, or a form repeating timestamp, token or signature, is refused.",
		},
		Preset{
			Name: "sendgrid", Docs: "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
			SignatureHeader: "X-Twilio-Email-Event-Webhook-Signature", Algorithm: "ecdsa-p256", Encoding: "base64",
			TimestampHeader: "X-Twilio-Email-Event-Webhook-Timestamp", Signed: "{timestamp}{body}",
			Notes: "Event Webhook signed with ECDSA P-256 (SHA-256, ASN.1 signature), not HMAC: the secret is the verification key as shown, a base64 DER public key.",
		},
		Preset{
			Name: "telnyx", Docs: "https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks#webhook-signing",
			SignatureHeader: "telnyx-signature-ed25519", Algorithm: "ed25519", Encoding: "base64",
			TimestampHeader: "telnyx-timestamp", Signed: "{timestamp}|{body}",
			Secret: decodeBase64Key,
			Notes:  "The secret is the account's public key, base64 as shown in the portal.",
		},
		Preset{
			Name: "hubspot", Docs: "https://developers.hubspot.com/docs/guides/apps/authentication/validating-requests#validate-the-v3-request-signature",
			SignatureHeader: "X-HubSpot-Signature-v3", Algorithm: "sha256", Encoding: "base64",
			TimestampHeader: "X-HubSpot-Request-Timestamp", TimestampFormat: "unix_ms",
			Signed: "{method}{url}{body}{timestamp}", Extract: hubspotExtract,
			Notes: "Signature v3; the secret is the app's client secret. In the URL, the percent-escapes HubSpot lists (%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B) are decoded first. Timestamps are in milliseconds.",
		},
		Preset{
			Name: "box", Docs: "https://developer.box.com/guides/webhooks/v2/signatures-v2/",
			SignatureHeader: "box-signature-primary", Algorithm: "sha256", Encoding: "base64",
			TimestampHeader: "box-delivery-timestamp", TimestampFormat: "rfc3339",
			Signed: "{body}{timestamp}", Extract: boxExtract,
			ExtraHeaders: []string{"box-signature-secondary", "box-signature-version", "box-signature-algorithm"},
			Notes: "Configure the primary and secondary keys; either box-signature-primary or box-signature-secondary may match either key. " +
				"box-signature-version must be 1 and box-signature-algorithm HmacSHA256. Box allows 10 minutes: set tolerance 10m to match.",
		},
		Preset{
			Name: "twitch", Docs: "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
			IDHeader: "Twitch-Eventsub-Message-Id", SignatureHeader: "Twitch-Eventsub-Message-Signature",
			Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			TimestampHeader: "Twitch-Eventsub-Message-Timestamp", TimestampFormat: "rfc3339",
			Signed: "{header.Twitch-Eventsub-Message-Id}{timestamp}{body}",
			Notes:  "EventSub webhooks; the secret is the subscription's secret. Twitch allows 10 minutes: set tolerance 10m to match.",
		},
		Preset{
			Name: "zendesk", Docs: "https://developer.zendesk.com/documentation/webhooks/verifying/",
			SignatureHeader: "X-Zendesk-Webhook-Signature", Algorithm: "sha256", Encoding: "base64",
			TimestampHeader: "X-Zendesk-Webhook-Signature-Timestamp", TimestampFormat: "rfc3339",
			Signed: "{timestamp}{body}",
			Notes:  "The secret is the webhook's signing secret, as shown (not decoded).",
		},
		Preset{
			Name: "trello", Docs: "https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/#webhook-signatures",
			SignatureHeader: "X-Trello-Webhook", Algorithm: "sha1", Encoding: "base64",
			Signed: "{body}{url}", Extract: trelloExtract,
			Notes: "The secret is the application's OAuth secret; the URL signed is the one the request arrived on, which must be the callbackURL as registered. " +
				"Trello signs non-ASCII text as Node.js binary strings (the low byte of each UTF-16 unit); both that and UTF-8 are accepted, " +
				"except that the binary form is refused where it could stand for another document (a character outside Latin-1 read as a quote or backslash, moving string boundaries). " +
				"Within strings that form cannot tell apart characters sharing a low byte (ń and D).",
		},
		Preset{
			Name: "teams", Docs: "https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-outgoing-webhook#2-create-a-method-to-verify-the-outgoing-webhook-hmac-token",
			SignatureHeader: "Authorization", Algorithm: "sha256", Encoding: "base64", Prefix: "HMAC ",
			Secret: decodeBase64Key,
			Notes:  "Microsoft Teams outgoing webhooks; the secret is the security token shown when the webhook is created (base64).",
		},
		Preset{
			Name: "netlify", Docs: "https://docs.netlify.com/site-deploys/deploy-notifications/#payload-signature",
			SignatureHeader: "X-Webhook-Signature", Algorithm: "sha256", Encoding: "base64url",
			Signed: "JWS HS256: {header}.{claims}", Extract: netlifyExtract,
			Notes: "The header is a JWS (HS256) signed with the JWS secret token; its iss claim must be netlify and its sha256 claim the hex SHA-256 of the body. " +
				"Its exp and nbf claims, when present, are enforced with the tolerance as leeway.",
		},
		Preset{
			Name: "vonage", Docs: "https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks",
			SignatureHeader: "Authorization", Algorithm: "sha256", Encoding: "base64url",
			Signed: "JWT HS256: {header}.{claims}", Extract: vonageExtract,
			Notes: "Authorization: Bearer <JWT> signed (HS256) with the account's signature secret; its payload_hash claim must be the hex SHA-256 of the body " +
				"and its iat claim (unix seconds) within the tolerance; exp and nbf, when present, are enforced. GET requests without a body are checked by the token alone: " +
				"Vonage hashes their query parameters as JSON, which is not rebuilt.",
		},
		Preset{
			Name: "adyen", Docs: "https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures/",
			SignatureHeader: "body: additionalData.hmacSignature", Algorithm: "sha256", Encoding: "base64",
			Signed: "pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success",
			Secret: decodeHexKey, Extract: adyenExtract,
			Notes: "Standard (JSON) webhooks: every NotificationRequestItem must carry a valid additionalData.hmacSignature over its fields joined by colons. " +
				"The secret is the HMAC key, hex as shown. Fields outside the signed list are not covered by the signature. " +
				"Bodies holding a JSON key twice, or a signed field that is null, an object or an array, are refused.",
		},
	)
}

// decodeBase64Key decodes a key handed out base64-encoded.
func decodeBase64Key(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
	if err != nil || len(key) == 0 {
		return nil, errors.New("must be base64")
	}
	return key, nil
}

// decodeHexKey decodes a key handed out hex-encoded.
func decodeHexKey(secret string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(secret))
	if err != nil || len(key) == 0 {
		return nil, errors.New("must be hex")
	}
	return key, nil
}

// header reads a required, bounded header.
func header(r *http.Request, name string) (string, error) {
	v := r.Header.Get(name)
	if v == "" {
		return "", fmt.Errorf("header %s %w", name, ErrMissing)
	}
	if len(v) > maxHeaderLen {
		return "", fmt.Errorf("header %s too long: %w", name, ErrMalformed)
	}
	return v, nil
}

// mediaType is the request's Content-Type without parameters; a missing
// one is ErrMissing.
func mediaType(r *http.Request) (string, map[string]string, error) {
	ct, err := header(r, "Content-Type")
	if err != nil {
		return "", nil, err
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, fmt.Errorf("content type %w", ErrMalformed)
	}
	return mt, params, nil
}

// sameHex compares a received hex digest with a computed one in constant
// time.
func sameHex(got string, want []byte) bool {
	var buf [2 * sha256.Size]byte
	if len(want) > sha256.Size {
		return false
	}
	n := hex.Encode(buf[:], want)
	return subtle.ConstantTimeCompare([]byte(got), buf[:n]) == 1
}

// urlVariants is the request URL with and without the default port: some
// senders (Twilio) are inconsistent about it.
func urlVariants(r *http.Request) [2]string {
	scheme, port := "https", "443"
	if r.TLS == nil {
		scheme, port = "http", "80"
	}
	host := r.Host
	bare := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		bare = host[:i]
	}
	rest := r.URL.RequestURI()
	withPort := scheme + "://" + bare + ":" + port + rest
	if bare != host {
		withPort = scheme + "://" + host + rest
	}
	return [2]string{withPort, scheme + "://" + bare + rest}
}

// twilioExtract: the URL, then for a form post every field sorted by name
// (name and value, no separators); for a JSON post the URL alone, with
// the body bound by the bodySHA256 query parameter.
func twilioExtract(r *http.Request, body []byte) ([]Signed, error) {
	sig, err := header(r, "X-Twilio-Signature")
	if err != nil {
		return nil, err
	}
	urls := urlVariants(r)
	if want := r.URL.Query().Get("bodySHA256"); want != "" {
		sum := sha256.Sum256(body)
		if !sameHex(want, sum[:]) {
			return nil, fmt.Errorf("bodySHA256 does not match the body: %w", ErrMismatch)
		}
		return []Signed{{Signatures: []string{sig}, Messages: []Message{{[]byte(urls[0])}, {[]byte(urls[1])}}}}, nil
	}
	var forms []Message
	switch {
	case len(body) == 0:
		forms = []Message{nil}
	default:
		mt, _, err := mediaType(r)
		if err != nil {
			return nil, err
		}
		if mt != "application/x-www-form-urlencoded" {
			// neither signed field by field nor bound by bodySHA256
			return nil, fmt.Errorf("a body neither form-encoded nor bound by bodySHA256 is not signed: %w", ErrMalformed)
		}
		if forms, err = twilioForms(body); err != nil {
			return nil, err
		}
	}
	var msgs []Message
	for _, u := range urls {
		for _, f := range forms {
			msgs = append(msgs, append(Message{[]byte(u)}, f...))
		}
	}
	return []Signed{{Signatures: []string{sig}, Messages: msgs}}, nil
}

// twilioForms renders form fields as Twilio signs them: sorted by name,
// name then value, a repeated name with each distinct value in order (as
// twilio-node). twilio-go signs only the first value of a repeated name;
// that form is not tried, since it would let values appended to a
// captured request pass unsigned.
func twilioForms(body []byte) ([]Message, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("form body %w", ErrMalformed)
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	var all Message
	for _, k := range names {
		vs := values[k]
		distinct := append([]string(nil), vs...)
		sort.Strings(distinct)
		for i, v := range distinct {
			if i > 0 && v == distinct[i-1] {
				continue
			}
			all = append(all, []byte(k), []byte(v))
		}
	}
	return []Message{all}, nil
}

// mailgunExtract reads the signature, timestamp and token from the body:
// the signature object of a JSON body, or the fields of a form body.
func mailgunExtract(r *http.Request, body []byte) ([]Signed, error) {
	mt, _, err := mediaType(r)
	if err != nil {
		return nil, err
	}
	var ts, token, sig string
	switch mt {
	case "application/json":
		if !gjson.ValidBytes(body) {
			return nil, fmt.Errorf("JSON body %w", ErrMalformed)
		}
		if duplicateKey(body) {
			return nil, errDuplicateKey
		}
		obj := gjson.GetBytes(body, "signature")
		if !obj.IsObject() {
			return nil, fmt.Errorf("signature object %w", ErrMissing)
		}
		ts, token, sig = jsonScalar(obj.Get("timestamp")), jsonScalar(obj.Get("token")), obj.Get("signature").String()
	case "application/x-www-form-urlencoded":
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("form body %w", ErrMalformed)
		}
		for _, name := range [...]string{"timestamp", "token", "signature"} {
			if len(values[name]) > 1 {
				return nil, fmt.Errorf("form field %s repeated: %w", name, ErrMalformed)
			}
		}
		ts, token, sig = values.Get("timestamp"), values.Get("token"), values.Get("signature")
	default:
		return nil, fmt.Errorf("content type %w", ErrMalformed)
	}
	if ts == "" || token == "" || sig == "" {
		return nil, fmt.Errorf("signature, timestamp or token %w", ErrMissing)
	}
	if len(token) > maxHeaderLen {
		return nil, fmt.Errorf("token %w", ErrMalformed)
	}
	return []Signed{{Timestamp: ts, Signatures: []string{sig}, Messages: []Message{{[]byte(ts), []byte(token)}}}}, nil
}

// jsonScalar is a JSON string's value or a number's text.
func jsonScalar(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return v.Str
	case gjson.Number:
		return v.Raw
	}
	return ""
}

// hubspotDecoded are the escapes HubSpot decodes in the URI it signs.
var hubspotDecoded = map[string]byte{
	"3A": ':', "2F": '/', "3F": '?', "40": '@', "21": '!', "24": '$',
	"27": '\'', "28": '(', "29": ')', "2A": '*', "2C": ',', "3B": ';',
}

// hubspotURI decodes, case-insensitively, the escapes HubSpot lists and
// leaves every other one as it is.
func hubspotURI(u string) string {
	if !strings.Contains(u, "%") {
		return u
	}
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		if u[i] == '%' && i+2 < len(u) {
			if c, ok := hubspotDecoded[strings.ToUpper(u[i+1:i+3])]; ok {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(u[i])
	}
	return b.String()
}

// hubspotExtract: method, URI (some escapes decoded), body, timestamp.
func hubspotExtract(r *http.Request, body []byte) ([]Signed, error) {
	sig, err := header(r, "X-HubSpot-Signature-v3")
	if err != nil {
		return nil, err
	}
	ts, err := header(r, "X-HubSpot-Request-Timestamp")
	if err != nil {
		return nil, err
	}
	msg := Message{[]byte(r.Method), []byte(hubspotURI(requestURL(r))), body, []byte(ts)}
	return []Signed{{Timestamp: ts, Signatures: []string{sig}, Messages: []Message{msg}}}, nil
}

// boxExtract: body then timestamp, signed with the primary key into one
// header and with the secondary key into another.
func boxExtract(r *http.Request, body []byte) ([]Signed, error) {
	ts, err := header(r, "box-delivery-timestamp")
	if err != nil {
		return nil, err
	}
	for _, h := range [...]struct{ name, want string }{{"box-signature-version", "1"}, {"box-signature-algorithm", "HmacSHA256"}} {
		name, want := h.name, h.want
		v, err := header(r, name)
		if err != nil {
			return nil, err
		}
		if v != want {
			return nil, fmt.Errorf("%s %w", name, ErrMalformed)
		}
	}
	var sigs []string
	for _, name := range []string{"box-signature-primary", "box-signature-secondary"} {
		if v := r.Header.Get(name); v != "" && len(v) <= maxHeaderLen {
			sigs = append(sigs, v)
		}
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("header box-signature-primary %w", ErrMissing)
	}
	return []Signed{{Timestamp: ts, Signatures: sigs, Messages: []Message{{body, []byte(ts)}}}}, nil
}

// trelloExtract: body then callback URL, as UTF-8 and as Node.js binary
// strings (the low byte of each UTF-16 unit), which is how Trello signs
// non-ASCII text; the binary form only where it cannot stand for another
// document (binaryAmbiguous).
func trelloExtract(r *http.Request, body []byte) ([]Signed, error) {
	sig, err := header(r, "X-Trello-Webhook")
	if err != nil {
		return nil, err
	}
	u := requestURL(r)
	msgs := []Message{{body, []byte(u)}}
	if (!isASCII(body) || !isASCII([]byte(u))) && utf8.Valid(body) && utf8.Valid([]byte(u)) {
		binBody, binURL := nodeBinary(body), nodeBinary([]byte(u))
		if !binaryAmbiguous(body, binBody) && !binaryAmbiguous([]byte(u), binURL) {
			msgs = append(msgs, Message{binBody, binURL})
		}
	}
	return []Signed{{Signatures: []string{sig}, Messages: msgs}}, nil
}

// binaryAmbiguous says whether bin, the Node.js binary form of text, may
// stand for a document other than text. Outside Latin-1 that form is
// lossy: U+0122, U+0422 and U+6F22 all become a quote, so the signature
// of {"text":"hi","listAfter":"Done"} would verify
// {"text":"hiĢ,ĢlistAfterĢ:Ģńone"}. It is ambiguous when a character of
// text outside Latin-1 becomes a quote or a backslash and bin, with those
// bytes read as such (other non-ASCII and control bytes as letters), is
// itself JSON: the signed bytes then read as a document whose strings
// end elsewhere. A genuine body with such characters (Cyrillic Т, some
// CJK) still verifies, since its binary form with them as quotes is not
// JSON.
func binaryAmbiguous(text, bin []byte) bool {
	lossy := false
	for b := text; len(b) > 0 && !lossy; {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r <= 0xFF {
			continue
		}
		units := [2]rune{r, r}
		if r >= 0x10000 {
			units[0], units[1] = utf16.EncodeRune(r)
		}
		for _, u := range units {
			if c := byte(u); c == '"' || c == '\\' { //nolint:gosec // the low byte, as Node.js keeps it
				lossy = true
			}
		}
	}
	if !lossy {
		return false
	}
	shape := make([]byte, len(bin))
	for i, c := range bin {
		if c < 0x20 || c >= 0x80 {
			c = 'x'
		}
		shape[i] = c
	}
	return json.Valid(shape)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// nodeBinary is UTF-8 text as Node.js "binary" encodes a string: one byte
// per UTF-16 code unit, its low eight bits.
func nodeBinary(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			out = append(out, byte(hi), byte(lo)) //nolint:gosec // Node.js "binary" encoding keeps the low byte of each UTF-16 unit, as Trello signs
			continue
		}
		out = append(out, byte(r)) //nolint:gosec // as above: the low byte of the UTF-16 unit
	}
	return out
}

// jwt is a compact HS256 JWS split into its parts, its claims decoded.
type jwt struct {
	header, claims, sig string
	payload             map[string]json.RawMessage
}

// parseHS256 splits a compact JWS and accepts only HS256 (never "none"
// nor a public-key algorithm, whatever the token says).
func parseHS256(token string) (*jwt, error) {
	if len(token) > maxHeaderLen {
		return nil, fmt.Errorf("token %w", ErrMalformed)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] == "" {
		return nil, fmt.Errorf("token %w", ErrMalformed)
	}
	head, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("token header %w", ErrMalformed)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(head, &h) != nil || h.Alg != "HS256" {
		return nil, fmt.Errorf("token algorithm %w", ErrMalformed)
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("token claims %w", ErrMalformed)
	}
	t := &jwt{header: parts[0], claims: parts[1], sig: parts[2]}
	if json.Unmarshal(claims, &t.payload) != nil || t.payload == nil {
		return nil, fmt.Errorf("token claims %w", ErrMalformed)
	}
	return t, nil
}

func (t *jwt) str(name string) (string, bool) {
	raw, ok := t.payload[name]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// num is a numeric claim as decimal text (seconds since the epoch).
func (t *jwt) num(name string) (string, bool) {
	raw, ok := t.payload[name]
	if !ok {
		return "", false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	if i, err := n.Int64(); err == nil && i >= 0 {
		return n.String(), true
	}
	return "", false
}

// signed is the token's signature over its header and claims, with ts
// checked against the tolerance and the exp and nbf claims (RFC 7519
// 4.1.4, 4.1.5) enforced when present; a present one that is not a
// non-negative integer is refused.
func (t *jwt) signed(ts string) ([]Signed, error) {
	s := Signed{Timestamp: ts, Signatures: []string{t.sig}, Messages: []Message{{[]byte(t.header), []byte("."), []byte(t.claims)}}}
	for _, c := range [...]struct {
		name string
		into *string
	}{{"exp", &s.NotAfter}, {"nbf", &s.NotBefore}} {
		if _, present := t.payload[c.name]; !present {
			continue
		}
		v, ok := t.num(c.name)
		if !ok {
			return nil, fmt.Errorf("token %s %w", c.name, ErrMalformed)
		}
		*c.into = v
	}
	return []Signed{s}, nil
}

// netlifyExtract: a JWS whose iss is netlify and whose sha256 claim binds
// the body.
func netlifyExtract(r *http.Request, body []byte) ([]Signed, error) {
	v, err := header(r, "X-Webhook-Signature")
	if err != nil {
		return nil, err
	}
	t, err := parseHS256(strings.TrimSpace(v))
	if err != nil {
		return nil, err
	}
	if iss, _ := t.str("iss"); iss != "netlify" {
		return nil, fmt.Errorf("token issuer %w", ErrMismatch)
	}
	want, ok := t.str("sha256")
	sum := sha256.Sum256(body)
	if !ok || !sameHex(want, sum[:]) {
		return nil, fmt.Errorf("token sha256 does not match the body: %w", ErrMismatch)
	}
	return t.signed("")
}

// vonageExtract: a bearer JWT whose payload_hash binds the body and whose
// iat is checked against the tolerance.
func vonageExtract(r *http.Request, body []byte) ([]Signed, error) {
	v, err := header(r, "Authorization")
	if err != nil {
		return nil, err
	}
	token, ok := strings.CutPrefix(v, "Bearer ")
	if !ok {
		return nil, fmt.Errorf("authorization scheme %w", ErrMalformed)
	}
	t, err := parseHS256(strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	// A body must be bound by payload_hash. For GET webhooks Vonage hashes
	// a JSON rendering of the query instead, which is not rebuilt here. Any
	// other request carrying a payload_hash is bound to its body even when
	// empty, so a token captured with a body cannot pass without one.
	want, hasHash := t.str("payload_hash")
	if len(body) > 0 || (hasHash && r.Method != http.MethodGet) {
		if !hasHash {
			return nil, fmt.Errorf("token payload_hash %w", ErrMissing)
		}
		sum := sha256.Sum256(body)
		if !sameHex(want, sum[:]) {
			return nil, fmt.Errorf("token payload_hash does not match the body: %w", ErrMismatch)
		}
	}
	iat, ok := t.num("iat")
	if !ok {
		return nil, fmt.Errorf("token iat %w", ErrMissing)
	}
	return t.signed(iat)
}

// adyenFields are the NotificationRequestItem fields Adyen signs, in
// order; value and currency come from amount.
var adyenFields = []string{"pspReference", "originalReference", "merchantAccountCode", "merchantReference", "amount.value", "amount.currency", "eventCode", "success"}

// adyenExtract: every notification item carries its own signature over
// its fields joined by colons.
func adyenExtract(r *http.Request, body []byte) ([]Signed, error) {
	mt, _, err := mediaType(r)
	if err != nil {
		return nil, err
	}
	if mt != "application/json" {
		return nil, fmt.Errorf("content type %w", ErrMalformed)
	}
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("JSON body %w", ErrMalformed)
	}
	// fields are signed, not bytes: a repeated key would let a reader
	// other than gjson see values the signature never covered
	if duplicateKey(body) {
		return nil, errDuplicateKey
	}
	items := gjson.GetBytes(body, "notificationItems")
	if !items.IsArray() {
		return nil, fmt.Errorf("notificationItems %w", ErrMissing)
	}
	var found []Signed
	var bad error
	items.ForEach(func(_, item gjson.Result) bool {
		if len(found) == maxCandidates {
			bad = fmt.Errorf("too many notification items: %w", ErrMalformed)
			return false
		}
		n := item.Get("NotificationRequestItem")
		sig := n.Get("additionalData.hmacSignature")
		if !n.IsObject() || sig.Type != gjson.String || sig.Str == "" {
			bad = fmt.Errorf("hmacSignature %w", ErrMissing)
			return false
		}
		msg := make(Message, 0, 2*len(adyenFields))
		for i, f := range adyenFields {
			if i > 0 {
				msg = append(msg, []byte(":"))
			}
			v := n.Get(f)
			switch v.Type {
			case gjson.String:
				msg = append(msg, []byte(v.Str))
			case gjson.Number, gjson.True, gjson.False:
				msg = append(msg, []byte(v.Raw))
			case gjson.Null:
				// absent signs as empty; so would null, or an object or
				// array, which could then be added to a signed item
				if v.Exists() {
					bad = fmt.Errorf("signed field %s is not a string, number or boolean: %w", f, ErrMalformed)
					return false
				}
			default:
				bad = fmt.Errorf("signed field %s is not a string, number or boolean: %w", f, ErrMalformed)
				return false
			}
		}
		found = append(found, Signed{Signatures: []string{sig.Str}, Messages: []Message{msg}})
		return true
	})
	if bad != nil {
		return nil, bad
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("notification items %w", ErrMissing)
	}
	return found, nil
}
