package caddymodule_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v84/webhook"
)

// Credentials of the hostile-input site. Each is distinctive, so a leak
// into an error body is found by a plain substring search.
const (
	hostileKey      = "hk-4f1b9c2e-sender-key"
	hostileQueryKey = "hq-88aa12d0-query-key"
	hostileGHSecret = "gh-hostile-secret-5a1d77"
	hostileStripe   = "whsec_stripe-hostile-9c1e3b"
	hostileUser     = "hook"
	hostilePass     = "pa:ss:word-77e1"
	bodyMarker      = "MARK-b0d7c4e9"
	adyenKey        = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056" // Adyen's documented example key
)

// hostileStd is a Standard Webhooks secret: whsec_ + base64 of the key.
var hostileStd = "whsec_" + base64.StdEncoding.EncodeToString([]byte("standard hostile secret key 32b!"))

func hostileSecrets() []string {
	return []string{
		hostileKey, hostileQueryKey, hostileGHSecret, hostileStripe, hostilePass, hostileStd,
		strings.TrimPrefix(hostileStd, "whsec_"),
	}
}

// hostileSite gates every path in front of app, and forwards /fwd to it.
func hostileSite(appAddr, appURL string) string {
	return fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /key {
		auth api_key %[1]q
	}
	webhook_gateway /keyq {
		auth api_key %[2]q {
			query key
		}
	}
	webhook_gateway /small {
		max_size 1KiB
		auth api_key %[1]q
	}
	webhook_gateway /gh {
		auth github %[3]q
	}
	webhook_gateway /stripe {
		auth stripe %[4]q
	}
	webhook_gateway /std {
		auth standard %[5]q
	}
	webhook_gateway /basic {
		auth basic %[6]s %[7]q
	}
	webhook_gateway /ghdup {
		auth github %[3]q {
			reject_duplicate_keys
		}
	}
	webhook_gateway /adyen {
		auth adyen %[10]s
	}
	webhook_gateway /fwd {
		auth api_key %[1]q
		forward %[9]s/fwd {
			retries 0
		}
	}
	webhook_gateway /fwdpath {
		auth api_key %[1]q
		forward %[9]s/t/{http.webhook_gateway.json.t}/x {
			retries 0
		}
	}
	reverse_proxy %[8]s
}
`, hostileKey, hostileQueryKey, hostileGHSecret, hostileStripe, hostileStd, hostileUser, hostilePass, appAddr, appURL, adyenKey)
}

func stripeHeader(ts time.Time, body []byte) string {
	return fmt.Sprintf("t=%d,v1=%s", ts.Unix(), hex.EncodeToString(webhook.ComputeSignature(ts, body, hostileStripe)))
}

func stdHeaders(t *testing.T, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(hostileStd)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)}, "Webhook-Signature": {sig}}
}

// hmacSHA256 is HMAC-SHA256 as the providers document it, written here
// independently of verify.
func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func basicHeader(userpass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))}}
}

// rawRequest is a request line and headers (without the blank line),
// followed by body, sent as is on a plain TCP connection.
type rawRequest struct {
	head       string
	body       string
	closeWrite bool // half-close after sending, as a sender that hangs up
}

// hostileCase is one request of the bad-input table.
type hostileCase struct {
	name    string
	path    string
	method  string // default POST
	ctype   string // default application/json; "-" sends none
	query   string
	header  http.Header
	body    []byte
	chunked bool
	raw     *rawRequest
	want    int
	// accept: the request must reach the upstream exactly once, with the
	// exact bytes sent (upstreamBody for a raw request).
	accept       bool
	upstreamBody string
	// server: answered by the HTTP server itself (malformed framing),
	// before the gateway runs, so the body is not the gateway's JSON.
	server bool
}

func keyHeader() http.Header { return http.Header{"X-Api-Key": {hostileKey}} }

func hostileCases(t *testing.T) []hostileCase {
	now := time.Now()
	valid := []byte(`{"marker":"` + bodyMarker + `","a":1}`)
	dupKeys := []byte(`{"marker":"` + bodyMarker + `","a":1,"a":2}`)
	// the example of Adyen's HMAC documentation, then with keys appended
	// to the signed item (read first by the check, last by many parsers)
	adyenItem := `{"NotificationRequestItem":{"additionalData":{"hmacSignature":"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},` +
		`"amount":{"currency":"EUR","value":1130},"pspReference":"7914073381342284","eventCode":"AUTHORISATION",` +
		`"merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","paymentMethod":"visa","success":"true"`
	adyenPublished := []byte(`{"live":"false","marker":"` + bodyMarker + `","notificationItems":[` + adyenItem + `}}]}`)
	adyenAltered := []byte(`{"live":"false","marker":"` + bodyMarker + `","notificationItems":[` + adyenItem + `,"success":"true","amount":{"value":999999}}}]}`)
	ghSig := githubSignature(hostileGHSecret, valid)
	mac, _ := hex.DecodeString(strings.TrimPrefix(ghSig, "sha256="))

	rawHead := func(path string, extra ...string) string {
		h := "POST " + path + " HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/json\r\nX-Api-Key: " + hostileKey + "\r\n"
		for _, e := range extra {
			h += e + "\r\n"
		}
		return h
	}

	deep := func(open, close string, n int) []byte {
		return []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n))
	}

	stripeSig := hex.EncodeToString(webhook.ComputeSignature(now, valid, hostileStripe))
	stripeAt := func(ts string) http.Header {
		// signed correctly over the given timestamp text
		return http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + hex.EncodeToString(hmacSHA256([]byte(hostileStripe), []byte(ts+"."+string(valid))))}}
	}
	manyStripe := "t=" + strconv.FormatInt(now.Unix(), 10)
	for range 300 {
		manyStripe += ",v1=" + strings.Repeat("ab", 32)
	}
	manyStripeWithGood := manyStripe + ",v1=" + stripeSig
	manyV0 := "t=" + strconv.FormatInt(now.Unix(), 10)
	for range 300 {
		manyV0 += ",v0=" + strings.Repeat("cd", 32)
	}
	manyV0 += ",v1=" + stripeSig

	stdGood := stdHeaders(t, "msg_hostile_1", now, valid)
	manyStd := stdGood.Clone()
	var sb strings.Builder
	for range 300 {
		sb.WriteString("v1," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + " ")
	}
	manyStd.Set("Webhook-Signature", sb.String()+stdGood.Get("Webhook-Signature"))
	stdAt := func(ts time.Time, tsText string) http.Header {
		h := stdHeaders(t, "msg_hostile_2", ts, valid)
		if tsText != "" {
			h.Set("Webhook-Timestamp", tsText)
		}
		return h
	}

	withKeyAnd := func(k, v string) http.Header { h := keyHeader(); h.Set(k, v); return h }

	return []hostileCase{
		// --- size and framing ---
		{name: "empty body", path: "/key", header: keyHeader(), body: nil, want: 400},
		{name: "whitespace-only body", path: "/key", header: keyHeader(), body: []byte(" \r\n\t "), want: 400},
		{name: "over max_size with Content-Length", path: "/small", header: keyHeader(), body: []byte(`{"p":"` + strings.Repeat("x", 1100) + `"}`), want: 413},
		{name: "over max_size by one byte", path: "/small", header: keyHeader(), body: []byte(`{"p":"` + strings.Repeat("x", 1025-8) + `"}`), want: 413},
		{name: "over max_size chunked", path: "/small", header: keyHeader(), body: []byte(`{"p":"` + strings.Repeat("x", 1100) + `"}`), chunked: true, want: 413},
		{name: "exactly max_size chunked", path: "/small", header: keyHeader(), body: []byte(`{"p":"` + strings.Repeat("x", 1024-8) + `"}`), chunked: true, want: 200, accept: true},
		{name: "huge declared Content-Length, no body", path: "/small", raw: &rawRequest{head: rawHead("/small", "Content-Length: 999999999999999")}, want: 413},
		{name: "declared Content-Length over max_size, body withheld", path: "/small", raw: &rawRequest{head: rawHead("/small", "Content-Length: 2000")}, want: 413},
		{name: "Expect 100-continue with a Content-Length over max_size", path: "/small", raw: &rawRequest{head: rawHead("/small", "Content-Length: 5000000", "Expect: 100-continue")}, want: 413},
		{name: "Content-Length lying short", path: "/key", raw: &rawRequest{head: rawHead("/key", "Content-Length: 5"), body: `{"a":1}`}, want: 400},
		{name: "Content-Length lying long, sender hangs up", path: "/key", raw: &rawRequest{head: rawHead("/key", "Content-Length: 100"), body: `{"a":1}`, closeWrite: true}, want: 400},
		// Transfer-Encoding wins over Content-Length (RFC 9112 6.3); the
		// upstream gets the decoded body with its own, correct length.
		{name: "Content-Length and chunked together", path: "/key", raw: &rawRequest{head: rawHead("/key", "Content-Length: 4", "Transfer-Encoding: chunked"), body: "7\r\n{\"a\":1}\r\n0\r\n\r\n"}, want: 200, accept: true, upstreamBody: `{"a":1}`},
		// refused by the HTTP server before any handler runs
		{name: "chunked given twice", path: "/key", raw: &rawRequest{head: rawHead("/key", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), body: "7\r\n{\"a\":1}\r\n0\r\n\r\n"}, want: 501, server: true},
		{name: "two different Content-Lengths", path: "/key", raw: &rawRequest{head: rawHead("/key", "Content-Length: 7", "Content-Length: 9"), body: `{"a":1}`}, want: 400, server: true},
		{name: "invalid chunk size", path: "/key", raw: &rawRequest{head: rawHead("/key", "Transfer-Encoding: chunked"), body: "zz\r\n{\"a\":1}\r\n0\r\n\r\n"}, want: 400},
		{name: "chunked body cut off", path: "/key", raw: &rawRequest{head: rawHead("/key", "Transfer-Encoding: chunked"), body: "7\r\n{\"a\":1}\r\n", closeWrite: true}, want: 400},
		{name: "GET with a body", path: "/key", method: http.MethodGet, header: keyHeader(), body: valid, want: 405},

		// --- content type ---
		{name: "application/jsonp", path: "/key", ctype: "application/jsonp", header: keyHeader(), body: valid, want: 415},
		{name: "text/json", path: "/key", ctype: "text/json", header: keyHeader(), body: valid, want: 415},
		{name: "application/json-seq", path: "/key", ctype: "application/json-seq", header: keyHeader(), body: valid, want: 415},
		{name: "no content type", path: "/key", ctype: "-", header: keyHeader(), body: valid, want: 415},
		{name: "charset utf-16", path: "/key", ctype: "application/json; charset=utf-16", header: keyHeader(), body: valid, want: 415},
		{name: "charset without value", path: "/key", ctype: "application/json; charset", header: keyHeader(), body: valid, want: 415},
		{name: "charset given twice, second latin1", path: "/key", ctype: "application/json; charset=utf-8; charset=latin1", header: keyHeader(), body: valid, want: 415},
		{name: "list of types", path: "/key", ctype: "application/json, text/plain", header: keyHeader(), body: valid, want: 415},
		{name: "bare +json suffix", path: "/key", ctype: "application/+json", header: keyHeader(), body: valid, want: 415},
		{name: "wildcard type", path: "/key", ctype: "*/*", header: keyHeader(), body: valid, want: 415},
		{name: "form without form_payload", path: "/key", ctype: "application/x-www-form-urlencoded", header: keyHeader(), body: []byte("payload=" + string(valid)), want: 415},
		{name: "mixed case with charset UTF-8", path: "/key", ctype: "Application/JSON; charset=UTF-8", header: keyHeader(), body: valid, want: 200, accept: true},
		{name: "quoted charset, no spaces", path: "/key", ctype: `application/json;charset="utf-8"`, header: keyHeader(), body: valid, want: 200, accept: true},
		{name: "vendor +json with parameter", path: "/key", ctype: "APPLICATION/VND.API+JSON; Version=2", header: keyHeader(), body: valid, want: 200, accept: true},

		// --- JSON ---
		{name: "invalid UTF-8 in a string", path: "/key", header: keyHeader(), body: []byte("{\"m\":\"" + bodyMarker + "\xff\xfe\"}"), want: 400},
		{name: "overlong UTF-8 encoding", path: "/key", header: keyHeader(), body: []byte("{\"m\":\"\xc0\xaf" + bodyMarker + "\"}"), want: 400},
		{name: "UTF-8 byte-order mark", path: "/key", header: keyHeader(), body: append([]byte("\xef\xbb\xbf"), valid...), want: 400},
		{name: "arrays nested 100000 deep", path: "/key", header: keyHeader(), body: deep("[", "]", 100000), want: 400},
		{name: "objects nested 100000 deep", path: "/key", header: keyHeader(), body: deep(`{"a":`, "}", 100000), want: 400},
		{name: "unbalanced 100000 openers", path: "/key", header: keyHeader(), body: []byte(strings.Repeat("[", 100000)), want: 400},
		{name: "duplicate keys pass untouched", path: "/key", header: keyHeader(), body: []byte(`{"a":1,"a":2,"marker":"` + bodyMarker + `"}`), want: 200, accept: true},
		{name: "trailing garbage", path: "/key", header: keyHeader(), body: append(append([]byte{}, valid...), " x"...), want: 400},
		{name: "two JSON values", path: "/key", header: keyHeader(), body: append(append([]byte{}, valid...), valid...), want: 400},
		{name: "trailing NUL", path: "/key", header: keyHeader(), body: append(append([]byte{}, valid...), 0), want: 400},
		{name: "number beyond float64", path: "/key", header: keyHeader(), body: []byte(`{"n":1e400,"m":-1e-400}`), want: 200, accept: true},
		{name: "integer of 60 digits", path: "/key", header: keyHeader(), body: []byte(`{"n":` + strings.Repeat("9", 60) + `}`), want: 200, accept: true},
		{name: "unsigned invalid JSON: 401 before 400", path: "/gh", body: []byte(`{"marker":"` + bodyMarker + `", tru`), want: 401},
		{name: "wrong key, invalid JSON: 401 before 400", path: "/key", header: http.Header{"X-Api-Key": {"nope-nope-nope"}}, body: []byte(`{{{`), want: 401},
		{name: "signed invalid JSON is 400", path: "/gh", header: http.Header{"X-Hub-Signature-256": {githubSignature(hostileGHSecret, []byte(`{{{`))}}, body: []byte(`{{{`), want: 400},

		// --- signature headers (github) ---
		{name: "signature missing", path: "/gh", body: valid, want: 401},
		{name: "signature empty", path: "/gh", header: http.Header{"X-Hub-Signature-256": {""}}, body: valid, want: 401},
		{name: "signature duplicated, both wrong", path: "/gh", header: http.Header{"X-Hub-Signature-256": {githubSignature("x", valid), githubSignature("y", valid)}}, body: valid, want: 401},
		{name: "signature duplicated, wrong first", path: "/gh", header: http.Header{"X-Hub-Signature-256": {githubSignature("x", valid), ghSig}}, body: valid, want: 401},
		{name: "signature truncated", path: "/gh", header: http.Header{"X-Hub-Signature-256": {ghSig[:len(ghSig)-2]}}, body: valid, want: 401},
		{name: "signature of odd length", path: "/gh", header: http.Header{"X-Hub-Signature-256": {ghSig[:len(ghSig)-1]}}, body: valid, want: 401},
		{name: "signature too long", path: "/gh", header: http.Header{"X-Hub-Signature-256": {ghSig + "00"}}, body: valid, want: 401},
		{name: "signature wrong prefix", path: "/gh", header: http.Header{"X-Hub-Signature-256": {"sha1=" + strings.TrimPrefix(ghSig, "sha256=")}}, body: valid, want: 401},
		{name: "signature without prefix", path: "/gh", header: http.Header{"X-Hub-Signature-256": {strings.TrimPrefix(ghSig, "sha256=")}}, body: valid, want: 401},
		{name: "signature base64 instead of hex", path: "/gh", header: http.Header{"X-Hub-Signature-256": {"sha256=" + base64.StdEncoding.EncodeToString(mac)}}, body: valid, want: 401},
		{name: "signature 7 KiB long", path: "/gh", header: http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("ab", 3500)}}, body: valid, want: 401},
		{name: "signature over a different body", path: "/gh", header: http.Header{"X-Hub-Signature-256": {ghSig}}, body: []byte(`{"marker":"` + bodyMarker + `","a":2}`), want: 401},
		{name: "github signed correctly", path: "/gh", header: http.Header{"X-Hub-Signature-256": {ghSig}}, body: valid, want: 200, accept: true},

		// --- Stripe ---
		{name: "stripe 300 v1 entries", path: "/stripe", header: http.Header{"Stripe-Signature": {manyStripe}}, body: valid, want: 401},
		{name: "stripe 300 v1 entries, good one last", path: "/stripe", header: http.Header{"Stripe-Signature": {manyStripeWithGood}}, body: valid, want: 401},
		{name: "stripe 300 v0 entries before a good v1", path: "/stripe", header: http.Header{"Stripe-Signature": {manyV0}}, body: valid, want: 401},
		{name: "stripe timestamp an hour ahead", path: "/stripe", header: http.Header{"Stripe-Signature": {stripeHeader(now.Add(time.Hour), valid)}}, body: valid, want: 401},
		{name: "stripe timestamp far past", path: "/stripe", header: stripeAt("1"), body: valid, want: 401},
		{name: "stripe timestamp non-numeric", path: "/stripe", header: stripeAt("soon"), body: valid, want: 401},
		{name: "stripe timestamp overflowing int64", path: "/stripe", header: stripeAt("99999999999999999999999"), body: valid, want: 401},
		{name: "stripe timestamp negative", path: "/stripe", header: stripeAt("-" + strconv.FormatInt(now.Unix(), 10)), body: valid, want: 401},
		{name: "stripe timestamp 99999999999 (year 5138)", path: "/stripe", header: stripeAt("99999999999"), body: valid, want: 401},
		{name: "stripe timestamp 999999999999999", path: "/stripe", header: stripeAt("999999999999999"), body: valid, want: 401},
		{name: "duplicate key, reject_duplicate_keys", path: "/ghdup", header: http.Header{"X-Hub-Signature-256": {githubSignature(hostileGHSecret, dupKeys)}}, body: dupKeys, want: 401},
		{name: "no duplicate key, reject_duplicate_keys", path: "/ghdup", header: http.Header{"X-Hub-Signature-256": {ghSig}}, body: valid, want: 200, accept: true},
		{name: "duplicate key without the option", path: "/gh", header: http.Header{"X-Hub-Signature-256": {githubSignature(hostileGHSecret, dupKeys)}}, body: dupKeys, want: 200, accept: true},
		{name: "adyen published notification", path: "/adyen", body: adyenPublished, want: 200, accept: true},
		{name: "adyen notification with fields appended twice", path: "/adyen", body: adyenAltered, want: 401},
		{name: "stripe two timestamps", path: "/stripe", header: http.Header{"Stripe-Signature": {"t=1," + stripeHeader(now, valid)}}, body: valid, want: 401},
		{name: "stripe signed correctly", path: "/stripe", header: http.Header{"Stripe-Signature": {stripeHeader(now, valid)}}, body: valid, want: 200, accept: true},

		// --- Standard Webhooks ---
		{name: "standard 300 signatures, good one last", path: "/std", header: manyStd, body: valid, want: 401},
		{name: "standard timestamp an hour ahead", path: "/std", header: stdAt(now.Add(time.Hour), ""), body: valid, want: 401},
		{name: "standard timestamp far past", path: "/std", header: stdAt(time.Unix(1, 0), ""), body: valid, want: 401},
		{name: "standard timestamp non-numeric", path: "/std", header: stdAt(now, "12e3"), body: valid, want: 401},
		{name: "standard timestamp overflowing", path: "/std", header: stdAt(now, "340282366920938463463374607431768211456"), body: valid, want: 401},
		{name: "standard without webhook-id", path: "/std", header: func() http.Header { h := stdAt(now, ""); h.Del("Webhook-Id"); return h }(), body: valid, want: 401},
		{name: "standard signed correctly", path: "/std", header: stdHeaders(t, "msg_hostile_ok", now, valid), body: valid, want: 200, accept: true},

		// --- Basic ---
		{name: "basic without a colon", path: "/basic", header: basicHeader(hostileUser + hostilePass), body: valid, want: 401},
		{name: "basic with several colons, wrong split", path: "/basic", header: basicHeader(hostileUser + ":pa:ss"), body: valid, want: 401},
		{name: "basic user with a colon", path: "/basic", header: basicHeader(hostileUser + ":x:" + hostilePass), body: valid, want: 401},
		{name: "basic non-UTF-8 password", path: "/basic", header: basicHeader(hostileUser + ":\xff\xfe\xfd"), body: valid, want: 401},
		{name: "basic non-UTF-8 user", path: "/basic", header: basicHeader("\xff\xfe:" + hostilePass), body: valid, want: 401},
		{name: "basic empty user", path: "/basic", header: basicHeader(":" + hostilePass), body: valid, want: 401},
		{name: "basic invalid base64", path: "/basic", header: http.Header{"Authorization": {"Basic !!!not-base64!!!"}}, body: valid, want: 401},
		{name: "basic credentials as bearer", path: "/basic", header: http.Header{"Authorization": {"Bearer " + base64.StdEncoding.EncodeToString([]byte(hostileUser+":"+hostilePass))}}, body: valid, want: 401},
		{name: "basic password with colons, split at the first", path: "/basic", header: basicHeader(hostileUser + ":" + hostilePass), body: valid, want: 200, accept: true},

		// --- API keys ---
		{name: "header key sent in the query", path: "/key", query: "X-API-Key=" + hostileKey, body: valid, want: 401},
		{name: "header key with non-UTF-8 bytes", path: "/key", header: http.Header{"X-Api-Key": {hostileKey + "\xff\xfe"}}, body: valid, want: 401},
		{name: "header key in other case", path: "/key", header: http.Header{"X-Api-Key": {strings.ToUpper(hostileKey)}}, body: valid, want: 401},
		{name: "header key duplicated, wrong first", path: "/key", header: http.Header{"X-Api-Key": {"wrong-key-wrong", hostileKey}}, body: valid, want: 401},
		{name: "query key wrong, right one in header", path: "/keyq", query: "key=wrong-key-wrong", header: http.Header{"X-Api-Key": {hostileQueryKey}}, body: valid, want: 401},
		{name: "query key twice, wrong first", path: "/keyq", query: "key=wrong-key-wrong&key=" + hostileQueryKey, body: valid, want: 401},
		{name: "header key right, wrong key in query", path: "/key", query: "X-API-Key=wrong-key-wrong", header: keyHeader(), body: valid, want: 200, accept: true},
		{name: "query key right, wrong key in header", path: "/keyq", query: "key=" + hostileQueryKey, header: http.Header{"X-Api-Key": {"wrong-key-wrong"}}, body: valid, want: 200, accept: true},

		// --- forward mode ---
		{name: "forward: invalid JSON", path: "/fwd", header: keyHeader(), body: []byte(`{"marker":"` + bodyMarker + `",}`), want: 400},
		{name: "forward: no key", path: "/fwd", body: valid, want: 401},
		{name: "forward: oversized chunked", path: "/fwd", header: withKeyAnd("X-Pad", "1"), body: bytes.Repeat([]byte(" "), 2<<20), chunked: true, want: 413},
		{name: "forward: accepted", path: "/fwd", header: keyHeader(), body: valid, want: 200, accept: true},

		// --- payload values in the forward URL's path (finding 1) ---
		{name: "path value ..", path: "/fwdpath", header: keyHeader(), body: pathBody(`".."`), want: 422},
		{name: "path value .", path: "/fwdpath", header: keyHeader(), body: pathBody(`"."`), want: 422},
		{name: "path value %2e%2e", path: "/fwdpath", header: keyHeader(), body: pathBody(`"%2e%2e"`), want: 422},
		{name: "path value with /", path: "/fwdpath", header: keyHeader(), body: pathBody(`"../../admin"`), want: 422},
		{name: "path value with backslash", path: "/fwdpath", header: keyHeader(), body: pathBody(`"..\\admin"`), want: 422},
		{name: "path value empty", path: "/fwdpath", header: keyHeader(), body: pathBody(`""`), want: 422},
		{name: "path value missing", path: "/fwdpath", header: keyHeader(), body: valid, want: 422},
		{name: "path value with CRLF", path: "/fwdpath", header: keyHeader(), body: pathBody(`"a\r\nHost: evil"`), want: 422},
		{name: "path value with NUL", path: "/fwdpath", header: keyHeader(), body: pathBody(`"a\u0000"`), want: 422},
		{name: "path value fullwidth dots", path: "/fwdpath", header: keyHeader(), body: pathBody(`"\uff0e\uff0e"`), want: 422},
		{name: "path value plain", path: "/fwdpath", header: keyHeader(), body: pathBody(`"tenant-1"`), want: 200, accept: true},
	}
}

// pathBody is a document whose field t is the raw JSON value v.
func pathBody(v string) []byte {
	return []byte(`{"marker":"` + bodyMarker + `","t":` + v + `}`)
}

// errorBodyOK checks a rejection's body: the documented JSON error shape,
// "unauthorized" and nothing more for 401, and none of the secrets, the
// credentials sent or the body bytes echoed.
func errorBodyOK(t *testing.T, status int, body []byte, sent http.Header, sentBody []byte) {
	t.Helper()
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Status != status || e.Error == "" {
		t.Errorf("error body %q is not {\"error\":...,\"status\":%d}", body, status)
	}
	if status == http.StatusUnauthorized && e.Error != "unauthorized" {
		t.Errorf("401 body %q says more than \"unauthorized\"", body)
	}
	text := string(body)
	for _, s := range hostileSecrets() {
		if strings.Contains(text, s) {
			t.Errorf("error body leaks the secret %q: %s", s, body)
		}
	}
	for name, vals := range sent {
		if strings.EqualFold(name, "Content-Type") {
			continue
		}
		for _, v := range vals {
			if len(v) >= 8 && strings.Contains(text, v) {
				t.Errorf("error body echoes the %s header: %s", name, body)
			}
		}
	}
	if strings.Contains(text, bodyMarker) || (len(sentBody) >= 8 && strings.Contains(text, string(sentBody))) {
		t.Errorf("error body echoes the request body: %s", body)
	}
}

// sendRaw writes rr on a new connection and reads one response.
func sendRaw(t *testing.T, rr *rawRequest) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gatewayPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, rr.head+"\r\n"+rr.body); err != nil {
		t.Fatal(err)
	}
	if rr.closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

// TestHostileRequests sends the bad-input table through a real Caddy. Every
// rejected request gets its documented status and reaches no upstream;
// every accepted one reaches it exactly once, byte for byte.
func TestHostileRequests(t *testing.T) {
	app := newUpstream(t, nil)
	tester := startCaddy(t, hostileSite(app.addr(), app.URL))

	cases := hostileCases(t)
	if len(cases) < 40 {
		t.Fatalf("bad-input table has %d cases, want at least 40", len(cases))
	}
	rejected := 0
	for _, tc := range cases {
		if !tc.accept {
			rejected++
		}
		t.Run(tc.name, func(t *testing.T) {
			before := len(app.requests())
			var (
				status int
				hdr    http.Header
				body   []byte
			)
			if tc.raw != nil {
				status, hdr, body = sendRaw(t, tc.raw)
			} else {
				method := tc.method
				if method == "" {
					method = http.MethodPost
				}
				var rd io.Reader = bytes.NewReader(tc.body)
				if tc.chunked {
					rd = io.MultiReader(rd) // unknown length: sent chunked
				}
				url := fmt.Sprintf("http://localhost:%d%s", gatewayPort, tc.path)
				if tc.query != "" {
					url += "?" + tc.query
				}
				req, err := http.NewRequest(method, url, rd)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tc.header {
					req.Header[k] = v
				}
				switch tc.ctype {
				case "":
					req.Header.Set("Content-Type", "application/json")
				case "-":
				default:
					req.Header.Set("Content-Type", tc.ctype)
				}
				status, hdr, body = do(t, tester, req)
			}
			if status != tc.want {
				t.Fatalf("status %d (%s), want %d", status, body, tc.want)
			}
			got := app.requests()[before:]
			if !tc.accept {
				if len(got) != 0 {
					t.Fatalf("rejected request reached the upstream %d times: %q", len(got), got[0].body)
				}
				if tc.server {
					return
				}
				errorBodyOK(t, status, body, tc.header, tc.body)
				switch status {
				case http.StatusUnsupportedMediaType:
					if hdr.Get("Accept-Post") == "" {
						t.Error("415 without Accept-Post")
					}
				case http.StatusMethodNotAllowed:
					if hdr.Get("Allow") != "POST" {
						t.Errorf("405 with Allow %q", hdr.Get("Allow"))
					}
				case http.StatusUnauthorized:
					if (tc.path == "/basic") != (hdr.Get("WWW-Authenticate") != "") {
						t.Errorf("WWW-Authenticate %q on %s", hdr.Get("WWW-Authenticate"), tc.path)
					}
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("accepted request reached the upstream %d times, want once", len(got))
			}
			var seen bytes.Buffer
			seen.WriteString(got[0].rawURI)
			_ = got[0].header.Write(&seen)
			for _, s := range append(hostileSecrets(), base64.StdEncoding.EncodeToString([]byte(hostileUser+":"+hostilePass))) {
				if strings.Contains(seen.String(), s) {
					t.Errorf("the upstream got the sender's credential %q: %s", s, seen.String())
				}
			}
			want := tc.body
			if tc.raw != nil {
				want = []byte(tc.upstreamBody)
			}
			if !bytes.Equal(got[0].body, want) {
				t.Errorf("upstream got %q, want the exact bytes sent %q", got[0].body, want)
			}
			if cl := got[0].header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
				t.Errorf("upstream got Content-Length %q for %d bytes", cl, len(want))
			}
		})
	}
	t.Logf("bad-input table: %d cases, %d rejected, %d accepted", len(cases), rejected, len(cases)-rejected)
	if rejected < 40 {
		t.Errorf("only %d rejected cases, want at least 40", rejected)
	}
}

// TestOversizedBodyRefusedBeforeItEnds sends a chunked body 1 MiB larger
// than max_size and never finishes it: the 413 must arrive while the body
// is still open, so the gateway neither waited for the end nor hashed it,
// and the server then stops reading (the connection is closed).
func TestOversizedBodyRefusedBeforeItEnds(t *testing.T) {
	app := newUpstream(t, nil)
	startCaddy(t, hostileSite(app.addr(), app.URL))

	for _, path := range []string{"/small", "/gh", "/fwd"} {
		t.Run(path, func(t *testing.T) {
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gatewayPort))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			limit := 1 << 20 // default max_size
			if path == "/small" {
				limit = 1 << 10
			}
			total := limit + 1<<20
			head := "POST " + path + " HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/json\r\n" +
				"X-Api-Key: " + hostileKey + "\r\nX-Hub-Signature-256: " + githubSignature(hostileGHSecret, []byte("{}")) + "\r\n" +
				"Transfer-Encoding: chunked\r\n\r\n"

			// The writer sends the chunks but never the terminating
			// zero-size chunk: a server that waited for the end of the body
			// would never answer.
			wrote := make(chan error, 1)
			go func() {
				if _, err := io.WriteString(conn, head+"1\r\n[\r\n"); err != nil {
					wrote <- err
					return
				}
				chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 16<<10, bytes.Repeat([]byte("1,"), 8<<10)))
				for sent := 1; sent < total; sent += 16 << 10 {
					if _, err := conn.Write(chunk); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- nil
			}()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response while the body was still open: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d (%s), want 413", resp.StatusCode, b)
			}
			errorBodyOK(t, resp.StatusCode, b, nil, nil)
			// The server closes the connection rather than reading the
			// rest: the next read sees EOF (or a reset), not a hang.
			if _, err := br.ReadByte(); err == nil {
				t.Error("connection still carries data after the 413")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("connection left open after the 413: the server keeps reading the body")
			}
			conn.Close()
			if err := <-wrote; err == nil {
				t.Logf("%s: all %d bytes were buffered before the close", path, total)
			}
			if n := len(app.requests()); n != 0 {
				t.Fatalf("upstream saw %d requests", n)
			}
		})
	}
}

// zeroReader is an endless generator: a huge answer without allocating it.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestUpstreamFaultsSenderStatus: what the sender gets, through a real
// Caddy, when the upstream fails in each way the network allows.
func TestUpstreamFaultsSenderStatus(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	reset := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"partial\":")
		_ = buf.Flush()
		_ = conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	hang := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})
	trickle := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		for range 1000 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	elsewhere := newUpstream(t, nil)
	redirect := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusTemporaryRedirect)
	})
	huge := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<30))
		_, _ = io.CopyN(w, zeroReader{}, 1<<30)
	})
	var tlsHits int
	var tlsMu sync.Mutex
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tlsMu.Lock()
		tlsHits++
		tlsMu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	tlsUp.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)

	startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /refused {
		forward http://%s/x {
			retries 1
			backoff 1ms 2ms
		}
	}
	webhook_gateway /reset {
		forward %s/x {
			retries 1
			backoff 1ms 2ms
		}
	}
	webhook_gateway /tls {
		forward %s/x {
			retries 0
		}
	}
	webhook_gateway /tlsskip {
		forward %s/x {
			retries 0
			tls_insecure_skip_verify
		}
	}
	webhook_gateway /hang {
		forward %s/x {
			timeout 150ms
			retries 0
		}
	}
	webhook_gateway /trickle {
		forward %s/x {
			timeout 300ms
			retries 0
		}
	}
	webhook_gateway /redirect {
		forward %s/x {
			retries 2
		}
	}
	webhook_gateway /huge {
		forward %s/x
	}
}
`, refused, reset.URL, tlsUp.URL, tlsUp.URL, hang.URL, trickle.URL, redirect.URL, huge.URL))

	// The sender does not follow redirects either, so what the gateway
	// answered is what is seen.
	sender := &http.Client{
		Timeout:       time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer sender.CloseIdleConnections()

	cases := []struct {
		path   string
		want   int
		upSeen func() int
		wantUp int
	}{
		{path: "/refused", want: 502},
		{path: "/reset", want: 502, upSeen: func() int { return len(reset.requests()) }, wantUp: 2},
		{path: "/tls", want: 502, upSeen: func() int { tlsMu.Lock(); defer tlsMu.Unlock(); return tlsHits }, wantUp: 0},
		{path: "/tlsskip", want: 201, upSeen: func() int { tlsMu.Lock(); defer tlsMu.Unlock(); return tlsHits }, wantUp: 1},
		{path: "/hang", want: 504, upSeen: func() int { return len(hang.requests()) }, wantUp: 1},
		{path: "/trickle", want: 504, upSeen: func() int { return len(trickle.requests()) }, wantUp: 1},
		{path: "/redirect", want: 307, upSeen: func() int { return len(redirect.requests()) }, wantUp: 1},
		// a 1 GiB answer is never passed on cut (finding 10)
		{path: "/huge", want: 502, upSeen: func() int { return len(huge.requests()) }, wantUp: 1},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			start := time.Now()
			req, err := http.NewRequest(http.MethodPost, gatewayURL()+tc.path, strings.NewReader(`{"marker":"`+bodyMarker+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := sender.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			status, hdr := resp.StatusCode, resp.Header
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			// not a speed check: the slow faults (/hang, /trickle) time out
			// after 150ms and 300ms; unbounded, they take 60s and 20s (and
			// the default deadline is 25s), far past this margin
			if took := time.Since(start); took >= 10*time.Second {
				t.Errorf("answered after %v: a fault was not bounded by its timeout", took)
			}
			if status != tc.want {
				t.Fatalf("status %d (%.200s), want %d", status, body, tc.want)
			}
			if tc.upSeen != nil && tc.upSeen() != tc.wantUp {
				t.Errorf("upstream saw %d requests, want %d", tc.upSeen(), tc.wantUp)
			}
			if tc.want >= 500 {
				errorBodyOK(t, status, body, nil, nil)
			}
			if tc.path == "/redirect" && hdr.Get("Location") == "" {
				t.Error("the upstream's 307 came back without its Location")
			}
		})
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("a redirect was followed to another host: it saw %d requests", n)
	}
}
