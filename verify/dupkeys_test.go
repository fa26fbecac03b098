package verify_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/verify"
)

// adyenItem is the published example of Adyen's HMAC documentation.
const adyenItem = `{"NotificationRequestItem":{"additionalData":{"hmacSignature":"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},` +
	`"amount":{"currency":"EUR","value":1130},"pspReference":"7914073381342284","eventCode":"AUTHORISATION",` +
	`"merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","paymentMethod":"visa","success":"true"`

// TestAdyenDuplicateKeys: gjson verifies the first occurrence of a key,
// last-wins parsers downstream use the last, so keys appended to a
// captured, signed item (Adyen has no timestamp) would alter it.
func TestAdyenDuplicateKeys(t *testing.T) {
	v := specialVerifier(t, "adyen", "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")
	h := http.Header{"Content-Type": {"application/json"}}
	wrap := func(item string) []byte { return []byte(`{"live":"false","notificationItems":[` + item + `]}`) }
	body := wrap(adyenItem + `}}`)
	expect(t, "published", v.Verify(newRequest(h, body), body), nil)
	for name, b := range map[string][]byte{
		"amount and success appended":    wrap(adyenItem + `,"success":"true","amount":{"value":999999}}}`),
		"escaped key":                    wrap(adyenItem + `,"\u0073uccess":"false"}}`),
		"duplicate inside amount":        wrap(strings.Replace(adyenItem, `"value":1130`, `"value":1130,"value":1`, 1) + `}}`),
		"duplicate signature":            wrap(strings.Replace(adyenItem, `"additionalData":{`, `"additionalData":{"hmacSignature":"x",`, 1) + `}}`),
		"duplicate item wrapper":         wrap(adyenItem + `},"NotificationRequestItem":{"success":"false"}}`),
		"duplicate notificationItems":    []byte(`{"live":"false","notificationItems":[` + adyenItem + `}}],"notificationItems":[]}`),
		"duplicate top-level field live": []byte(`{"live":"false","live":"true","notificationItems":[` + adyenItem + `}}]}`),
		// an absent signed field signs as empty: a value that is not a
		// string, number or boolean must not slip into its place
		"originalReference object added": wrap(adyenItem + `,"originalReference":{"pspReference":"9999"}}}`),
		"originalReference array added":  wrap(adyenItem + `,"originalReference":["9999"]}}`),
		"originalReference null added":   wrap(adyenItem + `,"originalReference":null}}`),
	} {
		expect(t, name, v.Verify(newRequest(h, b), b), verify.ErrMalformed)
	}
	b := wrap(adyenItem + `,"originalReference":""}}`)
	expect(t, "originalReference empty", v.Verify(newRequest(h, b), b), nil)
}

// TestContentTypeNotEchoed: the received Content-Type, text of the
// sender's choosing, is not copied into errors.
func TestContentTypeNotEchoed(t *testing.T) {
	for _, name := range []string{"adyen", "mailgun", "twilio"} {
		secret := "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
		v := specialVerifier(t, name, secret)
		h := http.Header{"Content-Type": {"application/x-leaked-token-7f3e"}, "X-Twilio-Signature": {"AAAA"}}
		err := v.Verify(newRequest(h, []byte("a=1")), []byte("a=1"))
		if err == nil || strings.Contains(err.Error(), "leaked-token") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMailgunRepeatedFields: the signature, timestamp and token are read
// once; a body holding them twice is refused, whichever one is signed.
func TestMailgunRepeatedFields(t *testing.T) {
	const key = "key-mailgun-signing"
	v := specialVerifier(t, "mailgun", key)
	ts, token := unix(fixedNow), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	sig := spHex(mac(sha256.New, []byte(key), ts, token))
	form := url.Values{"timestamp": {ts}, "token": {token}, "signature": {sig}, "event": {"delivered"}}
	formType := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	b := []byte(form.Encode())
	expect(t, "form", v.Verify(newRequest(formType, b), b), nil)
	for _, field := range []string{"timestamp", "token", "signature"} {
		f := url.Values{}
		for k, vs := range form {
			f[k] = vs
		}
		f.Add(field, f.Get(field))
		b := []byte(f.Encode())
		expect(t, "form with "+field+" twice", v.Verify(newRequest(formType, b), b), verify.ErrMalformed)
	}
	jsonType := http.Header{"Content-Type": {"application/json"}}
	obj := `{"timestamp":"` + ts + `","token":"` + token + `","signature":"` + sig + `"}`
	b = []byte(`{"signature":` + obj + `,"event-data":{"event":"delivered"}}`)
	expect(t, "json", v.Verify(newRequest(jsonType, b), b), nil)
	for name, b := range map[string]string{
		"signature object twice": `{"signature":` + obj + `,"event-data":{"event":"delivered"},"signature":{"timestamp":"1"}}`,
		"token twice":            strings.Replace(string(b), `"token":`, `"token":"x","token":`, 1),
		"event-data twice":       `{"signature":` + obj + `,"event-data":{"event":"delivered"},"event-data":{"event":"failed"}}`,
	} {
		expect(t, name, v.Verify(newRequest(jsonType, []byte(b)), []byte(b)), verify.ErrMalformed)
	}
}

// TestRejectDuplicateKeys: the option refuses, for any method, an
// authentic JSON body holding a key twice; other bodies are unaffected.
func TestRejectDuplicateKeys(t *testing.T) {
	const secret = "gh-secret"
	sign := func(b string) http.Header {
		return http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac(sha256.New, []byte(secret), b))}}
	}
	plain := mustNew(t, verify.Spec{Method: "github", Secrets: []string{secret}})
	strict := mustNew(t, verify.Spec{Method: "github", Secrets: []string{secret}, RejectDuplicateKeys: true})
	keyed := mustNew(t, verify.Spec{Method: "api_key", Secrets: []string{"k-1"}, RejectDuplicateKeys: true})
	for body, dup := range map[string]bool{
		`{"action":"opened","action":"closed"}`:           true,
		`{"a":{"b":1,"c":{"b":2}},"b":[{"b":1},{"b":2}]}`: false,
		`{"a":{"x":1},"a":2}`:                             true,
		`[{"id":1},{"id":1,"id":2}]`:                      true,
		`{"é":1,"\u00e9":2}`:                              true,
		`{"a\"b":1,"a":2,"a\\":3,"\"":4}`:                 false,
		`{"a":"a","b":"a","c":["a","a"]}`:                 false,
		`payload=%7B%22a%22%3A1%2C%22a%22%3A2%7D`:         false, // not JSON: left to the handler
		`{"a":1,"a":2`:                                    false, // not JSON: left to the handler
	} {
		if err := plain.Verify(newRequest(sign(body), []byte(body)), []byte(body)); err != nil {
			t.Errorf("%s without the option: %v", body, err)
		}
		var want error
		if dup {
			want = verify.ErrMalformed
		}
		expect(t, body, strict.Verify(newRequest(sign(body), []byte(body)), []byte(body)), want)
		h := http.Header{"X-Api-Key": {"k-1"}}
		expect(t, "api_key "+body, keyed.Verify(newRequest(h, []byte(body)), []byte(body)), want)
	}
	// the signature is checked first: a forged body is a mismatch
	body := `{"a":1,"a":2}`
	expect(t, "forged", strict.Verify(newRequest(sign("{}"), []byte(body)), []byte(body)), verify.ErrMismatch)
}
