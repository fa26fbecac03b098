package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mailgun/mailgun-go/v4"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	twilio "github.com/twilio/twilio-go/client"

	"github.com/caddy-webhooks/gateway/verify"
)

// The signers below are written from each provider's documentation (the
// Docs link of the preset), independently of the verify package; the SDK
// tests check the same requests against the providers' own verifiers.

func init() { extraCases = append(extraCases, specialCases...) }

var (
	spB64 = base64.StdEncoding.EncodeToString
	spHex = hex.EncodeToString
)

// shapeRequest points a test request at a URL, as the sender signed it.
func shapeRequest(rawURL, contentType string) func(*http.Request) {
	return func(r *http.Request) {
		u, err := url.Parse(rawURL)
		if err != nil {
			panic(err)
		}
		r.URL, r.Host, r.RequestURI = u, u.Host, u.RequestURI()
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
	}
}

// twilioSign signs as Twilio documents: the full URL, then each POST field
// sorted by name, name and value with no delimiters; HMAC-SHA1, base64.
func twilioSign(token, fullURL string, form url.Values) string {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	s := fullURL
	for _, k := range names {
		for _, v := range form[k] {
			s += k + v
		}
	}
	return spB64(mac(sha1.New, []byte(token), s))
}

const (
	twilioURL = "https://hooks.example.com/twilio/sms?tenant=a%20b"
	// a Twilio SMS form post, with characters encoders treat differently
	twilioForm = "ToCountry=US&Body=caf%C3%A9+%E2%98%95+%3Cb%3E%26amp%3B+1.50&From=%2B14155551234&To=%2B14155559876" +
		"&MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&NumMedia=0"
)

// hubspotSign signs as HubSpot v3 documents: method, URI with the listed
// escapes decoded, body, millisecond timestamp; HMAC-SHA256, base64.
func hubspotSign(secret, method, uri string, body []byte, ts time.Time) http.Header {
	decoded := strings.NewReplacer("%3A", ":", "%2F", "/", "%3F", "?", "%40", "@", "%21", "!", "%24", "$",
		"%27", "'", "%28", "(", "%29", ")", "%2A", "*", "%2C", ",", "%3B", ";").Replace(uri)
	ms := strconv.FormatInt(ts.UnixMilli(), 10)
	return http.Header{
		"X-Hubspot-Request-Timestamp": {ms},
		"X-Hubspot-Signature-V3":      {spB64(mac(sha256.New, []byte(secret), method, decoded, string(body), ms))},
	}
}

const hubspotURL = "https://hooks.example.com/hubspot/in?portal=%40team%2Cops&q=a%20b%3F"

// nodeBinaryString is text as Node.js's "binary" encoding sends it to a
// hash: the low byte of each UTF-16 code unit (Trello's documented quirk).
func nodeBinaryString(s string) string {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u))
	}
	return string(b)
}

const trelloURL = "https://hooks.example.com/trello/callback?board=5f1"

// mailgunBody is a Mailgun webhook whose signature fields the signer
// fills in place: the timestamp, token and signature have fixed widths.
var mailgunBody = []byte(`{"signature":{"timestamp":"0000000000","token":"a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",` +
	`"signature":"` + strings.Repeat("0", 64) + `"},"event-data":{"event":"delivered","text":"<b>&amp; caf\u00e9 ☕","slash":"a\/b","n":1.50}}`)

// mailgunSign writes the timestamp and HMAC-SHA256(key, timestamp+token)
// into the body's signature object, as Mailgun sends it.
func mailgunSign(key string, ts time.Time, b []byte) http.Header {
	stamp := unix(ts)
	i := bytes.Index(b, []byte(`"timestamp":"`)) + len(`"timestamp":"`)
	copy(b[i:i+10], stamp)
	var sig struct {
		Signature struct{ Token string }
	}
	if err := json.Unmarshal(b, &sig); err != nil {
		panic(err)
	}
	j := bytes.Index(b, []byte(`"signature":"`)) + len(`"signature":"`)
	copy(b[j:j+64], spHex(mac(sha256.New, []byte(key), stamp, sig.Signature.Token)))
	return http.Header{"Content-Type": {"application/json"}}
}

// adyenBody is an Adyen standard webhook; the signer fills in
// hmacSignature (44 base64 characters) in place.
var adyenBody = []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"` +
	strings.Repeat("A", 44) + `","shopperName":"<b>&amp; caf\u00e9 ☕"},"amount":{"currency":"EUR","value":1130},"eventCode":"AUTHORISATION",` +
	`"eventDate":"2026-11-22T12:00:00+01:00","merchantAccountCode":"TestMerchant","merchantReference":"caf\u00e9\/1","pspReference":"7914073381342284",` +
	`"reason":"","success":"true"}}]}`)

// adyenSign signs each item as Adyen documents: HMAC-SHA256 with the
// hex-decoded key over pspReference, originalReference,
// merchantAccountCode, merchantReference, value, currency, eventCode,
// success, joined by colons (absent ones empty); base64.
func adyenSign(hexKey string, _ time.Time, b []byte) http.Header {
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		panic(err)
	}
	var n struct {
		NotificationItems []struct {
			NotificationRequestItem struct {
				PspReference, OriginalReference, MerchantAccountCode, MerchantReference, EventCode, Success string
				Amount                                                                                      struct {
					Value    json.Number
					Currency string
				}
			}
		}
	}
	if err := json.Unmarshal(b, &n); err != nil {
		panic(err)
	}
	it := n.NotificationItems[0].NotificationRequestItem
	signed := strings.Join([]string{
		it.PspReference, it.OriginalReference, it.MerchantAccountCode, it.MerchantReference,
		it.Amount.Value.String(), it.Amount.Currency, it.EventCode, it.Success,
	}, ":")
	i := bytes.Index(b, []byte(`"hmacSignature":"`)) + len(`"hmacSignature":"`)
	copy(b[i:i+44], spB64(mac(sha256.New, key, signed)))
	return http.Header{"Content-Type": {"application/json"}}
}

// ECDSA P-256 key pairs for SendGrid; Ed25519 ones for Telnyx.
var sendgridKey1, sendgridKey2 = fixedECDSA("sendgrid 1"), fixedECDSA("sendgrid 2")

// fixedECDSA derives a P-256 key from a fixed label (see fixedEd25519).
func fixedECDSA(label string) *ecdsa.PrivateKey {
	d := sha256.Sum256([]byte("verify test key: " + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		panic(err)
	}
	return k
}

func ecdsaPub(k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return spB64(der)
}

// sendgridSign signs as SendGrid documents: ECDSA over SHA-256 of
// timestamp+payload, ASN.1 DER signature, base64.
func sendgridSign(pub string, ts time.Time, b []byte) http.Header {
	key := sendgridKey1
	if pub == ecdsaPub(sendgridKey2) {
		key = sendgridKey2
	}
	d := sha256.Sum256(append([]byte(unix(ts)), b...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		panic(err)
	}
	return http.Header{"X-Twilio-Email-Event-Webhook-Signature": {spB64(sig)}, "X-Twilio-Email-Event-Webhook-Timestamp": {unix(ts)}}
}

var telnyxKey1, telnyxKey2 = fixedEd25519("telnyx 1"), fixedEd25519("telnyx 2")

func pubB64(k ed25519.PrivateKey) string { return spB64(k.Public().(ed25519.PublicKey)) }

// jwtHS256 signs claims with golang-jwt, an implementation independent of
// the verify package.
func jwtHS256(secret string, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return spHex(s[:]) }

var teamsKey1, teamsKey2 = spB64([]byte("teams outgoing webhook key #1 ..")), spB64([]byte("teams outgoing webhook key #2 .."))

var specialCases = []presetCase{
	{
		name: "twilio", secret: "twilio-auth-token", other: "twilio-other-token",
		body:   []byte(twilioForm),
		tamper: func(b []byte) []byte { return bytes.Replace(b, []byte("1.50"), []byte("1.5"), 1) },
		setup:  shapeRequest(twilioURL, "application/x-www-form-urlencoded"),
		sign: func(s string, _ time.Time, b []byte) http.Header {
			form, err := url.ParseQuery(string(b))
			if err != nil {
				panic(err)
			}
			return http.Header{"X-Twilio-Signature": {twilioSign(s, twilioURL, form)}}
		},
		oracle: "SDK: twilio-go `client.RequestValidator` (TestTwilioSDK)",
	},
	{
		name: "square", secret: "square-signature-key", other: "square-other-key",
		setup: shapeRequest("https://hooks.example.com/square/webhook?shop=1", "application/json"),
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"X-Square-Hmacsha256-Signature": {spB64(mac(sha256.New, []byte(s), "https://hooks.example.com/square/webhook?shop=1", string(b)))}}
		},
		oracle: "vectors: Square's signature validation example (key asdf1234, https://example.com/webhook) (TestSquareVector)",
	},
	{
		name: "mailgun", secret: "key-mailgun-signing", other: "key-mailgun-other", stamped: true,
		body:   mailgunBody,
		tamper: func(b []byte) []byte { return bytes.Replace(b, []byte(`"token":"a8ce`), []byte(`"token":"b8ce`), 1) },
		sign:   mailgunSign,
		oracle: "SDK: mailgun-go `VerifyWebhookSignature` (TestMailgunSDK)",
	},
	{
		name: "sendgrid", secret: ecdsaPub(sendgridKey1), other: ecdsaPub(sendgridKey2), stamped: true,
		sign:   sendgridSign,
		oracle: "SDK: sendgrid-go `eventwebhook.VerifySignature`, and its published vector (TestSendGridSDK)",
	},
	{
		name: "telnyx", secret: pubB64(telnyxKey1), other: pubB64(telnyxKey2), stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			key := telnyxKey1
			if s == pubB64(telnyxKey2) {
				key = telnyxKey2
			}
			sig := ed25519.Sign(key, []byte(unix(ts)+"|"+string(b)))
			return http.Header{"Telnyx-Signature-Ed25519": {spB64(sig)}, "Telnyx-Timestamp": {unix(ts)}}
		},
	},
	{
		name: "hubspot", secret: "hubspot-client-secret", other: "hubspot-other", stamped: true,
		setup: shapeRequest(hubspotURL, "application/json"),
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return hubspotSign(s, http.MethodPost, hubspotURL, b, ts)
		},
	},
	{
		name: "box", secret: "box-primary-key", other: "box-other-key", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			stamp := ts.UTC().Format(time.RFC3339)
			return http.Header{
				"Box-Delivery-Timestamp":  {stamp},
				"Box-Signature-Primary":   {spB64(mac(sha256.New, []byte(s), string(b), stamp))},
				"Box-Signature-Version":   {"1"},
				"Box-Signature-Algorithm": {"HmacSHA256"},
			}
		},
		oracle: "vectors: Box's example in box-python-sdk's Webhook.validate_message unit test (keys SamplePrimaryKey, SampleSecondaryKey) (TestPublishedVectors)",
	},
	{
		name: "twitch", secret: "twitch-eventsub-secret", other: "twitch-other", stamped: true, idHdr: "Twitch-Eventsub-Message-Id",
		sign: func(s string, ts time.Time, b []byte) http.Header {
			const id = "befa7b53-d79d-478f-86b9-120f112b044e"
			stamp := ts.UTC().Add(123456789 * time.Nanosecond).Format(time.RFC3339Nano)
			return http.Header{
				"Twitch-Eventsub-Message-Id":        {id},
				"Twitch-Eventsub-Message-Timestamp": {stamp},
				"Twitch-Eventsub-Message-Signature": {"sha256=" + spHex(mac(sha256.New, []byte(s), id, stamp, string(b)))},
			}
		},
	},
	{
		name: "zendesk", secret: "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==", other: "zendesk-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			stamp := ts.UTC().Format(time.RFC3339)
			return http.Header{
				"X-Zendesk-Webhook-Signature":           {spB64(mac(sha256.New, []byte(s), stamp, string(b)))},
				"X-Zendesk-Webhook-Signature-Timestamp": {stamp},
			}
		},
	},
	{
		name: "trello", secret: "trello-oauth-secret", other: "trello-other",
		setup: shapeRequest(trelloURL, "application/json"),
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"X-Trello-Webhook": {spB64(mac(sha1.New, []byte(s), nodeBinaryString(string(b)+trelloURL)))}}
		},
	},
	{
		name: "teams", secret: teamsKey1, other: teamsKey2,
		sign: func(s string, _ time.Time, b []byte) http.Header {
			key, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				panic(err)
			}
			return http.Header{"Authorization": {"HMAC " + spB64(mac(sha256.New, key, string(b)))}}
		},
	},
	{
		name: "netlify", secret: "netlify-jws-secret", other: "netlify-other",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"X-Webhook-Signature": {jwtHS256(s, jwt.MapClaims{"iss": "netlify", "sha256": sha256Hex(b)})}}
		},
	},
	{
		name: "vonage", secret: "vonage-signature-secret", other: "vonage-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Authorization": {"Bearer " + jwtHS256(s, jwt.MapClaims{
				"iat": ts.Unix(), "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5", "iss": "Vonage",
				"payload_hash": sha256Hex(b), "api_key": "a1b2c3d4", "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
			})}}
		},
	},
	{
		name: "adyen", secret: "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
		other:  "0000000000000000000000000000000000000000000000000000000000000001",
		body:   adyenBody,
		tamper: func(b []byte) []byte { return bytes.Replace(b, []byte(`"value":1130`), []byte(`"value":1131`), 1) },
		sign:   adyenSign,
		oracle: "vectors: Adyen's HMAC example (key 44782DEF…), as in adyen-ruby-api-library's HmacValidator spec (TestAdyenVector)",
	},
}

func specialVerifier(t *testing.T, method string, secrets ...string) verify.Verifier {
	t.Helper()
	return mustNew(t, verify.Spec{Method: method, Secrets: secrets})
}

func expect(t *testing.T, name string, err, want error) {
	t.Helper()
	if want == nil && err != nil {
		t.Errorf("%s: rejected: %v", name, err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", name, err, want)
	}
}

// TestTwilioSDK checks requests against twilio-go's RequestValidator: form
// posts, JSON posts bound by bodySHA256, and URLs with and without the
// default port.
func TestTwilioSDK(t *testing.T) {
	const token = "12345"
	v := specialVerifier(t, "twilio", "another-token", token)
	rv := twilio.NewRequestValidator(token)
	jsonBody := []byte(`{"property": "value", "boolean": true, "text":"caf\u00e9 ☕ <b>"}`)
	jsonURL := "https://mycompany.com/myapp?bodySHA256=" + sha256Hex(jsonBody)
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}}
	formBody := []byte(form.Encode())
	cases := []struct {
		name, signedURL, arrivedURL, ct string
		body                            []byte
		sig                             string
		want                            error
	}{
		{"form", "https://mycompany.com/myapp.php?foo=1&bar=2", "https://mycompany.com/myapp.php?foo=1&bar=2", "application/x-www-form-urlencoded", formBody, "", nil},
		{"form signed with the port", "https://mycompany.com:443/myapp.php?foo=1", "https://mycompany.com/myapp.php?foo=1", "application/x-www-form-urlencoded", formBody, "", nil},
		{"form signed without the port", "https://mycompany.com/myapp.php?foo=1", "https://mycompany.com:443/myapp.php?foo=1", "application/x-www-form-urlencoded", formBody, "", nil},
		{"json", jsonURL, jsonURL, "application/json", jsonBody, "", nil},
		{"get", "https://mycompany.com/voice?CallSid=CA1&From=%2B1", "https://mycompany.com/voice?CallSid=CA1&From=%2B1", "", nil, "", nil},
		{"other path", "https://mycompany.com/myapp.php?foo=1&bar=2", "https://mycompany.com/other.php?foo=1&bar=2", "application/x-www-form-urlencoded", formBody, "", verify.ErrMismatch},
		{"json body changed", jsonURL, jsonURL, "application/json", append([]byte(" "), jsonBody...), "", verify.ErrMismatch},
		{"json without bodySHA256", "https://mycompany.com/myapp", "https://mycompany.com/myapp", "application/json", jsonBody, "", verify.ErrMalformed},
		{"form field added", "https://mycompany.com/myapp.php", "https://mycompany.com/myapp.php", "application/x-www-form-urlencoded", formBody, "extra", verify.ErrMismatch},
	}
	for _, tc := range cases {
		var signedForm url.Values
		if tc.ct == "application/x-www-form-urlencoded" {
			signedForm = form
		}
		sig := twilioSign(token, tc.signedURL, signedForm)
		body := tc.body
		if tc.sig == "extra" {
			body = append(append([]byte(nil), body...), "&Extra=1"...)
		}
		r := newRequest(http.Header{"X-Twilio-Signature": {sig}}, body)
		shapeRequest(tc.arrivedURL, tc.ct)(r)
		if body == nil {
			r.Method = http.MethodGet
		}
		err := v.Verify(r, body)
		expect(t, tc.name, err, tc.want)
		// twilio-go must agree (it checks GET requests with the query as params)
		var sdk bool
		if body == nil {
			params := map[string]string{}
			sdk = rv.Validate(tc.arrivedURL, params, sig)
		} else {
			sdk = rv.ValidateBody(tc.arrivedURL, body, sig)
		}
		if tc.name == "json without bodySHA256" {
			continue // twilio-go reads any body as form fields; a JSON body without bodySHA256 is not signed
		}
		if sdk != (err == nil) {
			t.Errorf("%s: we say %v, twilio-go says %v", tc.name, err, sdk)
		}
	}
}

// TestTwilioRepeatedFields: a repeated field is signed with each distinct
// value in order (twilio-node). twilio-go signs only the first value; that
// form is refused, since a value appended to a captured request would
// then pass unsigned.
func TestTwilioRepeatedFields(t *testing.T) {
	const token = "tw-token"
	v := specialVerifier(t, "twilio", token)
	body := []byte("MediaUrl=https%3A%2F%2Fb.example&MediaUrl=https%3A%2F%2Fa.example&Body=hi")
	const u = "https://hooks.example.com/mms"
	for name, tc := range map[string]struct {
		signed string
		want   error
	}{
		"each value sorted": {u + "Bodyhi" + "MediaUrlhttps://a.example" + "MediaUrlhttps://b.example", nil},
		"first value":       {u + "Bodyhi" + "MediaUrlhttps://b.example", verify.ErrMismatch},
		"field dropped":     {u + "Bodyhi", verify.ErrMismatch},
	} {
		r := newRequest(http.Header{"X-Twilio-Signature": {spB64(mac(sha1.New, []byte(token), tc.signed))}}, body)
		shapeRequest(u, "application/x-www-form-urlencoded")(r)
		expect(t, name, v.Verify(r, body), tc.want)
	}
	// a captured single-valued post with a second value appended
	captured := url.Values{"Body": {"hi"}, "From": {"+14155551234"}}
	sig := twilioSign(token, u, captured)
	for _, extra := range []string{"&Body=evil", "&From=%2B10000000000", "&Body=hi"} {
		b := []byte(captured.Encode() + extra)
		r := newRequest(http.Header{"X-Twilio-Signature": {sig}}, b)
		shapeRequest(u, "application/x-www-form-urlencoded")(r)
		want := verify.ErrMismatch
		if extra == "&Body=hi" {
			want = nil // the same value twice: twilio-node signs it once
		}
		expect(t, "appended "+extra, v.Verify(r, b), want)
	}
}

// TestSquareVector is the example of Square's webhook signature helper
// tests: notification URL, signature key, body and signature.
func TestSquareVector(t *testing.T) {
	v := specialVerifier(t, "square", "asdf1234")
	body := []byte(`{"hello":"world"}`)
	for name, tc := range map[string]struct {
		url  string
		sig  string
		want error
	}{
		"published":   {"https://example.com/webhook", "2kRE5qRU2tR+tBGlDwMEw2avJ7QM4ikPYD/PJ3bd9Og=", nil},
		"other URL":   {"https://example.com/webhook2", "2kRE5qRU2tR+tBGlDwMEw2avJ7QM4ikPYD/PJ3bd9Og=", verify.ErrMismatch},
		"http scheme": {"http://example.com/webhook", "2kRE5qRU2tR+tBGlDwMEw2avJ7QM4ikPYD/PJ3bd9Og=", verify.ErrMismatch},
	} {
		r := newRequest(http.Header{"X-Square-Hmacsha256-Signature": {tc.sig}}, body)
		shapeRequest(tc.url, "application/json")(r)
		if strings.HasPrefix(tc.url, "http:") {
			r.TLS = nil
		}
		expect(t, name, v.Verify(r, body), tc.want)
	}
}

// TestMailgunSDK: mailgun-go's VerifyWebhookSignature agrees on the
// signature object, JSON and form bodies both verify.
func TestMailgunSDK(t *testing.T) {
	const key = "mailgun-webhook-signing-key"
	v := specialVerifier(t, "mailgun", key)
	mg := mailgun.NewMailgun("mg.example.com", "api-key")
	mg.SetWebhookSigningKey(key)

	body := append([]byte(nil), mailgunBody...)
	mailgunSign(key, fixedNow, body)
	var payload mailgun.WebhookPayload
	if err := json.Unmarshal(body, &payload); err != nil {
		t.Fatal(err)
	}
	ok, err := mg.VerifyWebhookSignature(payload.Signature)
	if err != nil || !ok {
		t.Fatalf("mailgun-go rejects the test signer: %v %v", ok, err)
	}
	expect(t, "json", v.Verify(newRequest(http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body), body), nil)

	form := url.Values{"timestamp": {payload.Signature.TimeStamp}, "token": {payload.Signature.Token}, "signature": {payload.Signature.Signature}, "event": {"delivered"}}
	fb := []byte(form.Encode())
	expect(t, "form", v.Verify(newRequest(http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, fb), fb), nil)

	forged := payload.Signature
	forged.Token = strings.Repeat("f", 50)
	if ok, _ := mg.VerifyWebhookSignature(forged); ok {
		t.Fatal("mailgun-go accepts a forged token")
	}
	fb = bytes.Replace(body, []byte(payload.Signature.Token), []byte(forged.Token), 1)
	expect(t, "forged token", v.Verify(newRequest(http.Header{"Content-Type": {"application/json"}}, fb), fb), verify.ErrMismatch)

	for name, b := range map[string]string{
		"no signature object":     `{"event-data":{}}`,
		"signature not an object": `{"signature":"abc"}`,
		"no token":                `{"signature":{"timestamp":"1795400000","signature":"` + strings.Repeat("0", 64) + `"}}`,
		"not JSON":                `{"signature":`,
	} {
		err := v.Verify(newRequest(http.Header{"Content-Type": {"application/json"}}, []byte(b)), []byte(b))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := v.Verify(newRequest(http.Header{"Content-Type": {"text/plain"}}, body), body); !errors.Is(err, verify.ErrMalformed) {
		t.Errorf("text/plain: %v", err)
	}
}

// TestSendGridSDK: the published vector of sendgrid-go's eventwebhook
// tests verifies, and sendgrid-go agrees with our verdicts.
func TestSendGridSDK(t *testing.T) {
	const (
		publicKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
		signature = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
		timestamp = "1600112502"
	)
	payload := []byte(`[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",` +
		`"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]` + "\r\n")
	at := time.Unix(1600112502, 0)
	v := mustNew(t, verify.Spec{Method: "sendgrid", Secrets: []string{publicKey}, Now: func() time.Time { return at }})
	key, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Twilio-Email-Event-Webhook-Signature": {signature}, "X-Twilio-Email-Event-Webhook-Timestamp": {timestamp}}
	tampered := bytes.Replace(payload, []byte("dropped"), []byte("dropper"), 1)
	for name, tc := range map[string]struct {
		body []byte
		ts   string
		want error
	}{
		"published vector": {payload, timestamp, nil},
		"tampered":         {tampered, timestamp, verify.ErrMismatch},
		"other timestamp":  {payload, "1600112503", verify.ErrMismatch},
	} {
		h := h.Clone()
		h.Set("X-Twilio-Email-Event-Webhook-Timestamp", tc.ts)
		err := v.Verify(newRequest(h, tc.body), tc.body)
		expect(t, name, err, tc.want)
		sdk, _ := eventwebhook.VerifySignature(key, tc.body, signature, tc.ts)
		if sdk != (err == nil) {
			t.Errorf("%s: we say %v, sendgrid-go says %v", name, err, sdk)
		}
	}
	// a signature from the test signer verifies with sendgrid-go too
	sh := sendgridSign(ecdsaPub(sendgridKey1), fixedNow, trapBody)
	ok, err := eventwebhook.VerifySignature(&sendgridKey1.PublicKey, trapBody, sh.Get("X-Twilio-Email-Event-Webhook-Signature"), unix(fixedNow))
	if err != nil || !ok {
		t.Errorf("sendgrid-go rejects the test signer: %v %v", ok, err)
	}
	for _, bad := range []string{"", "bm90IGEga2V5", ecdsaPub(sendgridKey1)[:40], spB64(telnyxKey1.Public().(ed25519.PublicKey))} {
		if _, err := verify.New(verify.Spec{Method: "sendgrid", Secrets: []string{bad}}); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

// TestBoxEitherKey: Box signs with the primary key into one header and the
// secondary into the other; either verifies, a forged pair does not.
func TestBoxEitherKey(t *testing.T) {
	const primary, secondary = "box-primary", "box-secondary"
	v := specialVerifier(t, "box", primary, secondary)
	stamp := fixedNow.UTC().Format(time.RFC3339)
	sign := func(k string) string { return spB64(mac(sha256.New, []byte(k), string(trapBody), stamp)) }
	base := http.Header{"Box-Delivery-Timestamp": {stamp}, "Box-Signature-Version": {"1"}, "Box-Signature-Algorithm": {"HmacSHA256"}}
	for name, tc := range map[string]struct {
		primary, secondary string
		want               error
	}{
		"both":                {sign(primary), sign(secondary), nil},
		"primary rotated out": {sign("old-primary"), sign(secondary), nil},
		"secondary only":      {"", sign(secondary), nil},
		"neither":             {sign("x"), sign("y"), verify.ErrMismatch},
		"none":                {"", "", verify.ErrMissing},
	} {
		h := base.Clone()
		if tc.primary != "" {
			h.Set("Box-Signature-Primary", tc.primary)
		}
		if tc.secondary != "" {
			h.Set("Box-Signature-Secondary", tc.secondary)
		}
		expect(t, name, v.Verify(newRequest(h, trapBody), trapBody), tc.want)
	}
	h := base.Clone()
	h.Set("Box-Signature-Primary", sign(primary))
	h.Set("Box-Signature-Algorithm", "HmacSHA1")
	expect(t, "other algorithm", v.Verify(newRequest(h, trapBody), trapBody), verify.ErrMalformed)
	// Box allows ten minutes; a user who configures that gets it
	v10 := mustNew(t, verify.Spec{Method: "box", Secrets: []string{primary}, Tolerance: 10 * time.Minute})
	old := fixedNow.Add(-9 * time.Minute).UTC().Format(time.RFC3339)
	h = base.Clone()
	h.Set("Box-Delivery-Timestamp", old)
	h.Set("Box-Signature-Primary", spB64(mac(sha256.New, []byte(primary), string(trapBody), old)))
	expect(t, "nine minutes, tolerance 10m", v10.Verify(newRequest(h, trapBody), trapBody), nil)
}

// TestTrelloEncodings: ASCII bodies sign the same either way; UTF-8
// signatures of non-ASCII bodies are accepted too.
func TestTrelloEncodings(t *testing.T) {
	const secret = "trello-secret"
	v := specialVerifier(t, "trello", secret)
	for name, body := range map[string][]byte{"ascii": []byte(`{"action":{"type":"updateCard"}}`), "utf-8": trapBody} {
		r := newRequest(http.Header{"X-Trello-Webhook": {spB64(mac(sha1.New, []byte(secret), string(body)+trelloURL))}}, body)
		shapeRequest(trelloURL, "application/json")(r)
		expect(t, name, v.Verify(r, body), nil)
		r = newRequest(http.Header{"X-Trello-Webhook": {spB64(mac(sha1.New, []byte(secret), string(body)+trelloURL))}}, body)
		shapeRequest("https://hooks.example.com/trello/other", "application/json")(r)
		expect(t, name+" other callback", v.Verify(r, body), verify.ErrMismatch)
	}
}

// TestHubSpotURI: the escapes HubSpot lists are decoded (either case),
// others are signed as sent.
func TestHubSpotURI(t *testing.T) {
	const secret = "hs-secret"
	v := specialVerifier(t, "hubspot", secret)
	const arrived = "https://hooks.example.com/hs?email=a%40b.com&name=J%C3%BCrgen&list=1%2c2"
	signed := "https://hooks.example.com/hs?email=a@b.com&name=J%C3%BCrgen&list=1,2"
	ms := strconv.FormatInt(fixedNow.UnixMilli(), 10)
	for name, tc := range map[string]struct {
		signed string
		want   error
	}{
		"decoded":           {signed, nil},
		"not decoded":       {arrived, verify.ErrMismatch},
		"decoded too much":  {"https://hooks.example.com/hs?email=a@b.com&name=Jürgen&list=1,2", verify.ErrMismatch},
		"seconds timestamp": {signed, verify.ErrTimestamp},
	} {
		stamp := ms
		if name == "seconds timestamp" {
			stamp = unix(fixedNow)
		}
		h := http.Header{
			"X-Hubspot-Request-Timestamp": {stamp},
			"X-Hubspot-Signature-V3":      {spB64(mac(sha256.New, []byte(secret), "POST", tc.signed, string(trapBody), stamp))},
		}
		r := newRequest(h, trapBody)
		shapeRequest(arrived, "application/json")(r)
		expect(t, name, v.Verify(r, trapBody), tc.want)
	}
}

// TestJWTPresets: tokens that are not HS256, lack the body binding, or
// bind another body are refused.
func TestJWTPresets(t *testing.T) {
	const secret = "jwt-secret"
	netlify := specialVerifier(t, "netlify", secret)
	vonage := specialVerifier(t, "vonage", secret)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"netlify","sha256":"`+sha256Hex(trapBody)+`"}`)) + "."
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"iss": "netlify", "sha256": sha256Hex(trapBody)}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		token string
		want  error
	}{
		"alg none":    {none, verify.ErrMalformed},
		"HS512":       {hs512, verify.ErrMalformed},
		"other iss":   {jwtHS256(secret, jwt.MapClaims{"iss": "someone", "sha256": sha256Hex(trapBody)}), verify.ErrMismatch},
		"no sha256":   {jwtHS256(secret, jwt.MapClaims{"iss": "netlify"}), verify.ErrMismatch},
		"other body":  {jwtHS256(secret, jwt.MapClaims{"iss": "netlify", "sha256": sha256Hex([]byte("{}"))}), verify.ErrMismatch},
		"not a token": {"abc.def", verify.ErrMalformed},
	} {
		expect(t, "netlify "+name, netlify.Verify(newRequest(http.Header{"X-Webhook-Signature": {tc.token}}, trapBody), trapBody), tc.want)
	}
	for name, tc := range map[string]struct {
		auth string
		body []byte
		want error
	}{
		"no iat":             {"Bearer " + jwtHS256(secret, jwt.MapClaims{"payload_hash": sha256Hex(trapBody)}), trapBody, verify.ErrMissing},
		"no hash":            {"Bearer " + jwtHS256(secret, jwt.MapClaims{"iat": fixedNow.Unix()}), trapBody, verify.ErrMissing},
		"empty body":         {"Bearer " + jwtHS256(secret, jwt.MapClaims{"iat": fixedNow.Unix()}), nil, nil},
		"get webhook":        {"Bearer " + jwtHS256(secret, jwt.MapClaims{"iat": fixedNow.Unix(), "payload_hash": sha256Hex([]byte(`{"from":"447700900000"}`))}), nil, nil},
		"post, body removed": {"Bearer " + jwtHS256(secret, jwt.MapClaims{"iat": fixedNow.Unix(), "payload_hash": sha256Hex(trapBody)}), nil, verify.ErrMismatch},
		"get, stale":         {"Bearer " + jwtHS256(secret, jwt.MapClaims{"iat": fixedNow.Add(-time.Hour).Unix()}), nil, verify.ErrTimestamp},
		"get, forged":        {"Bearer " + jwtHS256("other", jwt.MapClaims{"iat": fixedNow.Unix()}), nil, verify.ErrMismatch},
		"basic scheme":       {"Basic " + jwtHS256(secret, jwt.MapClaims{"iat": fixedNow.Unix(), "payload_hash": sha256Hex(trapBody)}), trapBody, verify.ErrMalformed},
	} {
		r := newRequest(http.Header{"Authorization": {tc.auth}}, tc.body)
		if strings.HasPrefix(name, "get") {
			r.Method = http.MethodGet
		}
		expect(t, "vonage "+name, vonage.Verify(r, tc.body), tc.want)
	}
}

// TestAdyenVector is the example of Adyen's HMAC documentation and
// libraries: key, notification fields and signature.
func TestAdyenVector(t *testing.T) {
	v := specialVerifier(t, "adyen", "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")
	item := `{"NotificationRequestItem":{"additionalData":{"hmacSignature":"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},` +
		`"amount":{"currency":"EUR","value":1130},"pspReference":"7914073381342284","eventCode":"AUTHORISATION",` +
		`"merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","paymentMethod":"visa","success":"true"}}`
	h := http.Header{"Content-Type": {"application/json"}}
	body := []byte(`{"live":"false","notificationItems":[` + item + `]}`)
	expect(t, "published", v.Verify(newRequest(h, body), body), nil)
	two := []byte(`{"live":"false","notificationItems":[` + item + `,` + strings.Replace(item, "1130", "1131", 1) + `]}`)
	expect(t, "second item forged", v.Verify(newRequest(h, two), two), verify.ErrMismatch)
	for name, b := range map[string]string{
		"no items":     `{"live":"false"}`,
		"empty items":  `{"live":"false","notificationItems":[]}`,
		"no signature": strings.Replace(string(body), `"hmacSignature"`, `"hmac"`, 1),
	} {
		expect(t, name, v.Verify(newRequest(h, []byte(b)), []byte(b)), verify.ErrMissing)
	}
	if _, err := verify.New(verify.Spec{Method: "adyen", Secrets: []string{"not hex"}}); err == nil {
		t.Error("a key that is not hex accepted")
	}
}

// TestJWTExpiry: a token's exp and nbf (RFC 7519 4.1.4, 4.1.5) are
// enforced, with the tolerance as leeway; the tokens are made by
// golang-jwt.
func TestJWTExpiry(t *testing.T) {
	const secret = "jwt-secret"
	netlify := specialVerifier(t, "netlify", secret)
	vonage := specialVerifier(t, "vonage", secret)
	year := 365 * 24 * time.Hour
	date := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(fixedNow.Add(d)) }
	for name, tc := range map[string]struct {
		claims jwt.MapClaims
		want   error
	}{
		"expired a year ago":       {jwt.MapClaims{"exp": date(-year)}, verify.ErrTimestamp},
		"expired beyond tolerance": {jwt.MapClaims{"exp": date(-5*time.Minute - time.Second)}, verify.ErrTimestamp},
		"expired within tolerance": {jwt.MapClaims{"exp": date(-time.Minute)}, nil},
		"expires in an hour":       {jwt.MapClaims{"exp": date(time.Hour), "iat": date(-time.Second)}, nil},
		"valid in a year":          {jwt.MapClaims{"nbf": date(year)}, verify.ErrTimestamp},
		"valid in a minute":        {jwt.MapClaims{"nbf": date(time.Minute)}, nil},
		"valid since a year":       {jwt.MapClaims{"nbf": date(-year), "exp": date(year)}, nil},
		"exp not a number":         {jwt.MapClaims{"exp": "tomorrow"}, verify.ErrMalformed},
		"exp fractional":           {jwt.MapClaims{"exp": 1795400000.5}, verify.ErrMalformed},
		"exp negative":             {jwt.MapClaims{"exp": -1}, verify.ErrMalformed},
		"exp beyond int64":         {jwt.MapClaims{"exp": json.Number("99999999999999999999")}, verify.ErrMalformed},
		"nbf null":                 {jwt.MapClaims{"nbf": nil}, verify.ErrMalformed},
	} {
		claims := jwt.MapClaims{"iss": "netlify", "sha256": sha256Hex(trapBody)}
		for k, v := range tc.claims {
			claims[k] = v
		}
		h := http.Header{"X-Webhook-Signature": {jwtHS256(secret, claims)}}
		expect(t, "netlify "+name, netlify.Verify(newRequest(h, trapBody), trapBody), tc.want)

		claims = jwt.MapClaims{"iat": fixedNow.Unix(), "payload_hash": sha256Hex(trapBody)}
		for k, v := range tc.claims {
			claims[k] = v
		}
		h = http.Header{"Authorization": {"Bearer " + jwtHS256(secret, claims)}}
		expect(t, "vonage "+name, vonage.Verify(newRequest(h, trapBody), trapBody), tc.want)
	}
}

// TestTrelloLossyForgery: Node.js's binary form keeps the low byte of each
// UTF-16 unit, so U+0122 (Ģ) stands for a quote and U+0144 (ń) for D. The
// signature of {"text":"hi","listAfter":"Done"} must not verify a body in
// which those characters move the string boundaries; genuine bodies that
// need the binary form still verify.
func TestTrelloLossyForgery(t *testing.T) {
	const secret = "trello-secret"
	v := specialVerifier(t, "trello", secret)
	trelloSign := func(signed string) http.Header {
		// Trello's documented HMAC-SHA1 over body + callback URL, binary strings
		return http.Header{"X-Trello-Webhook": {spB64(mac(sha1.New, []byte(secret), nodeBinaryString(signed+trelloURL)))}}
	}
	check := func(name string, h http.Header, body string, want error) {
		t.Helper()
		r := newRequest(h, []byte(body))
		shapeRequest(trelloURL, "application/json")(r)
		expect(t, name, v.Verify(r, []byte(body)), want)
	}
	for captured, forged := range map[string]string{
		`{"text":"hi","listAfter":"Done"}`:            `{"text":"hi` + "\u0122,\u0122listAfter\u0122:\u0122\u0144one" + `"}`,
		`{"name":"card","idList":"5f1"}`:              `{"name":"card` + "\u0422,\u0422idList\u0422:\u04225f1" + `"}`,
		`{"text":"hi","listAfter":"Done","x":"café"}`: `{"text":"hi` + "\u0122,\u0122listAfter\u0122:\u0122\u0144one" + `","x":"café"}`,
	} {
		if nodeBinaryString(forged) != nodeBinaryString(captured) || !json.Valid([]byte(forged)) {
			t.Fatalf("%s: the forgery does not collide", forged)
		}
		check("captured "+captured, trelloSign(captured), captured, nil)
		check("forged "+forged, trelloSign(captured), forged, verify.ErrMismatch)
	}
	invalid := "{\"text\":\"caf\xe9\"}" // invalid UTF-8: U+FFFD, whose binary form is that of ý
	check("invalid UTF-8", trelloSign("{\"text\":\"caf\u00fd\"}"), invalid, verify.ErrMismatch)
	for name, body := range map[string]string{
		"latin-1":          `{"text":"café crème"}`,
		"beyond latin-1":   `{"text":"Zażółć gęślą jaźń – ☕ Жж 漢字 \U0001F600"}`,
		"cyrillic Т":       `{"name":"Тест","desc":"Т,Т"}`,
		"emoji as a quote": `{"text":"a\U0001F622b"}`,
		"Ŝ as a backslash": `{"text":"\u015C"}`,
		"quote and latin1": `{"text":"say \"héllo\" \\ ok"}`,
	} {
		check(name, trelloSign(body), body, nil)
	}
}
