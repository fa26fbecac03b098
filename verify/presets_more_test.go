package verify_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/caddy-webhooks/gateway/verify"
)

// The signers below are written from each provider's documentation (the
// Docs link of the preset), independently of the verify package.

func init() { extraCases = append(extraCases, moreCases...) }

var (
	hexEnc = hex.EncodeToString
	b64Enc = base64.StdEncoding.EncodeToString
)

// bodySigner signs the raw body alone: header = prefix + enc(HMAC(secret, body)).
func bodySigner(header, prefix string, h func() hash.Hash, enc func([]byte) string) func(string, time.Time, []byte) http.Header {
	return func(s string, _ time.Time, b []byte) http.Header {
		return http.Header{header: {prefix + enc(mac(h, []byte(s), string(b)))}}
	}
}

// tokenSigner puts the secret itself in a header.
func tokenSigner(header string) func(string, time.Time, []byte) http.Header {
	return func(s string, _ time.Time, _ []byte) http.Header { return http.Header{header: {s}} }
}

// standardSigner signs as Standard Webhooks: key = base64(secret without
// "whsec_"), content "<id>.<timestamp>.<body>", "v1,<base64>" entries;
// svix selects the svix-* header family.
func standardSigner(svix bool) func(string, time.Time, []byte) http.Header {
	return func(s string, ts time.Time, b []byte) http.Header {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			panic(err)
		}
		const id = "msg_2mBd7sVQ8a1oHkVxXq9bWd"
		sig := "v1," + b64Enc(mac(sha256.New, key, id, ".", unix(ts), ".", string(b)))
		family := "Webhook-"
		if svix {
			family = "Svix-"
		}
		return http.Header{family + "Id": {id}, family + "Timestamp": {unix(ts)}, family + "Signature": {"v1,c3RhbGU= " + sig}}
	}
}

func unixMs(ts time.Time) string { return strconv.FormatInt(ts.UnixMilli(), 10) }

var (
	whsecA = "whsec_" + b64Enc([]byte("a 32-byte signing key for tests!"))
	whsecB = "whsec_" + b64Enc([]byte("another 32-byte key for the test"))
)

var moreCases = []presetCase{
	// Code hosting and CI.
	{
		name: "bitbucket", secret: "bb-secret", other: "bb-other", idHdr: "X-Request-UUID",
		sign: bodySigner("X-Hub-Signature", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "gitea", secret: "gitea-secret", other: "gitea-other", idHdr: "X-Gitea-Delivery",
		sign: bodySigner("X-Gitea-Signature", "", sha256.New, hexEnc),
	},
	{
		name: "forgejo", secret: "forgejo-secret", other: "forgejo-other", idHdr: "X-Forgejo-Delivery",
		sign: bodySigner("X-Forgejo-Signature", "", sha256.New, hexEnc),
	},
	{
		name: "gogs", secret: "gogs-secret", other: "gogs-other", idHdr: "X-Gogs-Delivery",
		sign: bodySigner("X-Gogs-Signature", "", sha256.New, hexEnc),
	},
	{
		name: "circleci", secret: "circle-secret", other: "circle-other", list: true, listHdr: "Circleci-Signature",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"Circleci-Signature": {"v1=" + hexEnc(mac(sha256.New, []byte(s), string(b)))}}
		},
	},
	{
		name: "buildkite", secret: "bk-token", other: "bk-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"X-Buildkite-Signature": {"timestamp=" + unix(ts) + ",signature=" + hexEnc(mac(sha256.New, []byte(s), unix(ts), ".", string(b)))}}
		},
	},
	{
		name: "buildkite_token", secret: "bk-plain-token", other: "bk-plain-other", noBody: true,
		sign: tokenSigner("X-Buildkite-Token"),
	},
	// Monitoring, hosting and platforms.
	{
		name: "sentry", secret: "sentry-client-secret", other: "sentry-other", idHdr: "Request-ID",
		sign: bodySigner("Sentry-Hook-Signature", "", sha256.New, hexEnc),
	},
	{
		name: "terraform", secret: "tfc-token", other: "tfc-other",
		sign: bodySigner("X-Tfe-Notification-Signature", "", sha512.New, hexEnc),
	},
	// Scheduling, productivity, collaboration.
	{
		name: "calendly", secret: "calendly-signing-key", other: "calendly-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Calendly-Webhook-Signature": {"t=" + unix(ts) + ",v1=" + hexEnc(mac(sha256.New, []byte(s), unix(ts), ".", string(b)))}}
		},
	},
	{
		name: "calcom", secret: "cal-secret", other: "cal-other",
		sign: bodySigner("X-Cal-Signature-256", "", sha256.New, hexEnc),
	},
	{
		name: "clickup", secret: "clickup-secret", other: "clickup-other",
		sign: bodySigner("X-Signature", "", sha256.New, hexEnc),
	},
	// Identity.
	{
		name: "logto", secret: "logto-signing-key", other: "logto-other",
		sign: bodySigner("Logto-Signature-Sha-256", "", sha256.New, hexEnc),
	},
	// Payments and commerce.
	{
		name: "razorpay", secret: "rzp-webhook-secret", other: "rzp-other",
		oracle: "vectors: https://github.com/razorpay/razorpay-node/blob/master/test/utils/razorpay-utils.spec.js (TestPublishedVectors)",
		sign:   bodySigner("X-Razorpay-Signature", "", sha256.New, hexEnc),
	},
	{
		name: "paystack", secret: "sk_test_paystack", other: "sk_test_other",
		sign: bodySigner("X-Paystack-Signature", "", sha512.New, hexEnc),
	},
	{
		name: "coinbase_commerce", secret: "cc-shared-secret", other: "cc-other",
		oracle: "vectors: https://github.com/coinbase/coinbase-commerce-node/blob/master/test/testWebhook.spec.js (TestPublishedVectors)",
		sign:   bodySigner("X-Cc-Webhook-Signature", "", sha256.New, hexEnc),
	},
	{
		name: "woocommerce", secret: "wc-secret", other: "wc-other", idHdr: "X-WC-Webhook-Delivery-ID",
		sign: bodySigner("X-Wc-Webhook-Signature", "", sha256.New, b64Enc),
	},
	// Accounting.
	// Messaging and social.
	{
		name: "meta", secret: "meta-app-secret", other: "meta-other",
		sign: bodySigner("X-Hub-Signature-256", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "whatsapp", secret: "wa-app-secret", other: "wa-other",
		sign: bodySigner("X-Hub-Signature-256", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "instagram", secret: "ig-app-secret", other: "ig-other",
		sign: bodySigner("X-Hub-Signature-256", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "line", secret: "line-channel-secret", other: "line-other",
		sign: bodySigner("X-Line-Signature", "", sha256.New, b64Enc),
	},
	{
		name: "pusher", secret: "pusher-app-secret", other: "pusher-other",
		oracle: "vectors: https://github.com/pusher/pusher-http-go/blob/master/webhook_test.go (TestPublishedVectors)",
		sign:   bodySigner("X-Pusher-Signature", "", sha256.New, hexEnc),
	},
	// Customer data and messaging platforms.
	{
		name: "segment", secret: "segment-shared-secret", other: "segment-other",
		sign: bodySigner("X-Signature", "", sha1.New, hexEnc),
	},
	{
		name: "customerio", secret: "cio-signing-key", other: "cio-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{
				"X-Cio-Timestamp": {unix(ts)},
				"X-Cio-Signature": {hexEnc(mac(sha256.New, []byte(s), "v0:", unix(ts), ":", string(b)))},
			}
		},
	},
	// Standard Webhooks and Svix senders.
	{
		name: "openai", secret: whsecA, other: whsecB, stamped: true, list: true, listHdr: "Webhook-Signature", idHdr: "webhook-id",
		oracle: "vectors: https://github.com/openai/openai-python/blob/main/tests/api_resources/test_webhooks.py (TestPublishedVectors)",
		sign:   standardSigner(false),
	},
	{
		name: "replicate", secret: whsecA, other: whsecB, stamped: true, list: true, listHdr: "Webhook-Signature", idHdr: "webhook-id",
		oracle: "SDK: Standard Webhooks Go library `Webhook.Sign`/`Verify` (TestStandardSenderLibraries)",
		sign:   standardSigner(false),
	},
	{
		name: "clerk", secret: whsecA, other: whsecB, stamped: true, list: true, listHdr: "Svix-Signature", idHdr: "webhook-id",
		oracle: "SDK: svix-webhooks Go `Webhook.Sign`/`Verify` (TestStandardSenderLibraries)",
		sign:   standardSigner(true),
	},
	{
		name: "resend", secret: whsecA, other: whsecB, stamped: true, list: true, listHdr: "Svix-Signature", idHdr: "webhook-id",
		oracle: "SDK: svix-webhooks Go `Webhook.Sign`/`Verify` (TestStandardSenderLibraries)",
		sign:   standardSigner(true),
	},
	{
		name: "gitlab_signed", secret: whsecA, other: whsecB, stamped: true, list: true, listHdr: "Webhook-Signature", idHdr: "webhook-id",
		oracle: "SDK: Standard Webhooks Go library `Webhook.Sign`/`Verify` (TestStandardSenderLibraries)",
		sign:   standardSigner(false),
	},
	// Identity and developer platforms.
	{
		name: "workos", secret: "workos-webhook-secret", other: "workos-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Workos-Signature": {"t=" + unixMs(ts) + ", v1=" + hexEnc(mac(sha256.New, []byte(s), unixMs(ts), ".", string(b)))}}
		},
	},
	{
		name: "okta", secret: "Basic YWRtaW46c3VwZXJzZWNyZXQ=", other: "Basic b3RoZXI6b3RoZXI=", noBody: true,
		sign: tokenSigner("Authorization"),
	},
	{
		name: "webflow", secret: "webflow-client-secret", other: "webflow-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{
				"X-Webflow-Timestamp": {unixMs(ts)},
				"X-Webflow-Signature": {hexEnc(mac(sha256.New, []byte(s), unixMs(ts), ":", string(b)))},
			}
		},
	},
	{
		name: "mux", secret: "mux-signing-secret", other: "mux-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Mux-Signature": {"t=" + unix(ts) + ",v1=" + hexEnc(mac(sha256.New, []byte(s), unix(ts), ".", string(b)))}}
		},
		oracle: "vectors: the webhook tests of Mux's SDKs (mux-node, mux-ruby, mux-elixir), header generated by Mux's backend (TestPublishedVectors)",
	},
	{
		name: "alchemy", secret: "whsec_alchemy_signing_key", other: "whsec_alchemy_other",
		sign: bodySigner("X-Alchemy-Signature", "", sha256.New, hexEnc),
	},
	// Finance.
	{
		name: "onfido", secret: "onfido-webhook-token", other: "onfido-other",
		oracle: "vectors: https://github.com/onfido/onfido-node/blob/master/test/webhook-event-verifier.test.ts (TestPublishedVectors)",
		sign:   bodySigner("X-Sha2-Signature", "", sha256.New, hexEnc),
	},
	// Content and communication.
	{
		name: "sanity", secret: "sanity-webhook-secret", other: "sanity-other", stamped: true,
		oracle: "vectors: github.com/sanity-io/webhook-toolkit test/signature.test.ts (TestSanityVectors)",
		sign: func(s string, ts time.Time, b []byte) http.Header {
			sig := base64.RawURLEncoding.EncodeToString(mac(sha256.New, []byte(s), unixMs(ts), ".", string(b)))
			return http.Header{"Sanity-Webhook-Signature": {"t=" + unixMs(ts) + ",v1=" + sig}}
		},
	},
	{
		name: "front", secret: "front-app-signing-key", other: "front-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{
				"X-Front-Request-Timestamp": {unixMs(ts)},
				"X-Front-Signature":         {b64Enc(mac(sha256.New, []byte(s), unixMs(ts), ":", string(b)))},
			}
		},
	},
	{
		name: "front_rule", secret: "front-api-secret", other: "front-api-other",
		sign: bodySigner("X-Front-Signature", "", sha1.New, b64Enc),
	},
	// Billing.
	{
		name: "recurly", secret: "recurly-endpoint-key", other: "recurly-other", stamped: true, list: true, listHdr: "Recurly-Signature",
		sign: func(s string, ts time.Time, b []byte) http.Header {
			sig := hexEnc(mac(sha256.New, []byte(s), unixMs(ts), ".", string(b)))
			return http.Header{"Recurly-Signature": {unixMs(ts) + "," + strings.Repeat("0", 64) + "," + sig}}
		},
	},
	{
		name: "revolut", secret: "wsk_revolut_secret", other: "wsk_revolut_other", stamped: true, list: true, listHdr: "Revolut-Signature",
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{
				"Revolut-Request-Timestamp": {unixMs(ts)},
				"Revolut-Signature":         {"v1=" + hexEnc(mac(sha256.New, []byte(s), "v1.", unixMs(ts), ".", string(b)))},
			}
		},
	},
	// More code, CI and developer tools.
	{
		name: "jira", secret: "jira-admin-webhook-secret", other: "jira-other", idHdr: "X-Atlassian-Webhook-Identifier",
		sign: bodySigner("X-Hub-Signature", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "snyk", secret: "snyk-webhook-secret", other: "snyk-other",
		sign: bodySigner("X-Hub-Signature", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "discourse", secret: "discourse-secret", other: "discourse-other", idHdr: "X-Discourse-Event-Id",
		oracle: "vectors: https://github.com/discourse/discourse/blob/main/spec/jobs/emit_web_hook_event_spec.rb (TestPublishedVectors)",
		sign:   bodySigner("X-Discourse-Event-Signature", "sha256=", sha256.New, hexEnc),
	},
	{
		name: "hookdeck", secret: "hookdeck-signing-secret", other: "hookdeck-other",
		sign: bodySigner("X-Hookdeck-Signature", "", sha256.New, b64Enc),
	},
	{
		name: "cloudflare", secret: "cf-notification-secret", other: "cf-other", noBody: true,
		sign: tokenSigner("Cf-Webhook-Auth"),
	},
	{
		name: "elevenlabs", secret: "wsec_elevenlabs", other: "wsec_other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Elevenlabs-Signature": {"t=" + unix(ts) + ",v0=" + hexEnc(mac(sha256.New, []byte(s), unix(ts), ".", string(b)))}}
		},
	},
	// More content, forms and CRM.
	{
		name: "persona", secret: "wbhsec_persona_current", other: "wbhsec_persona_other", stamped: true, list: true, listHdr: "Persona-Signature",
		sign: func(s string, ts time.Time, b []byte) http.Header {
			sig := hexEnc(mac(sha256.New, []byte(s), unix(ts), ".", string(b)))
			return http.Header{"Persona-Signature": {"t=" + unix(ts) + ",v1=" + sig}}
		},
	},
	// More payments, billing and logistics.
	{
		name: "fourthwall", secret: "e3f93c7c-c92b-4b8f-a9b1-5b70e0891abc", other: "0b1c2d3e-other",
		sign: bodySigner("X-Fourthwall-Hmac-Sha256", "", sha256.New, b64Enc),
	},
}

// TestSanityVectors checks the vectors of Sanity's own toolkit
// (sanity-io/webhook-toolkit, test/signature.test.ts).
func TestSanityVectors(t *testing.T) {
	for _, tc := range []struct {
		name, secret, body, header string
		want                       error
	}{
		{"valid", "test", `{"_id":"resume"}`, "t=1633519811129,v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0", nil},
		{"encoded", "try-me", `{"title":"GROQ-Hooks are neat"}`, "t=1633518820676,v1=e7C9h2sfbFfc4V7TEz7PSOp4IoNzl0UdVsBV-1wgdeA", nil},
		{"space after comma", "test", `{"_id":"resume"}`, "t=1633519811129, v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0", nil},
		{"other timestamp", "test", `{"_id":"resume"}`, "t=1633519811128,v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0", verify.ErrMismatch},
		{"other hash", "test", `{"_id":"resume"}`, "t=1633519811129,v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N1", verify.ErrMalformed},
		{"other payload", "test", `{"_id":"structure"}`, "t=1633519811129,v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0", verify.ErrMismatch},
		{"unknown version", "test", `{"_id":"resume"}`, "t=1633519811129,v5=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0", verify.ErrMalformed},
	} {
		ts, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(tc.header, ",")[0], "t="), 10, 64)
		v, err := verify.New(verify.Spec{Method: "sanity", Secrets: []string{tc.secret}, Now: func() time.Time { return time.UnixMilli(ts) }})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(tc.body)
		err = v.Verify(newRequest(http.Header{"Sanity-Webhook-Signature": {tc.header}}, body), body)
		if tc.want == nil && err != nil {
			t.Errorf("%s: rejected: %v", tc.name, err)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestPublishedVectors checks signatures published by the providers
// themselves, in their SDKs' test suites, byte for byte.
func TestPublishedVectors(t *testing.T) {
	onfidoBody := `{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"check-123","status":"complete","completed_at_iso8601":"2020-01-01T00:00:00Z","href":"https://api.onfido.com/v3/checks/check-123"}}}`
	coinbaseBody := `{"id":1,"scheduled_for":"2017-01-31T20:50:02Z","attempt_number":1,"event":{"id":"24934862-d980-46cb-9402-43c81b0cdba6","type":"charge:created","api_version":"2018-03-22","created_at":"2017-01-31T20:49:02Z","data":{"code":"66BEOV2A","name":"The Sovereign Individual","description":"Mastering the Transition to the Information Age","hosted_url":"https://commerce.coinbase.com/charges/66BEOV2A","created_at":"2017-01-31T20:49:02Z","expires_at":"2017-01-31T21:04:02Z","timeline":[{"time":"2017-01-31T20:49:02Z","status":"NEW"}],"metadata":{},"pricing_type":"no_price","payments":[],"addresses":{"bitcoin":"0000000000000000000000000000000000","ethereum":"0x0000000000000000000000000000000000000000","litecoin":"3000000000000000000000000000000000","bitcoincash":"bitcoincash:000000000000000000000000000000000000000000"}}}}`
	const boxBody = `{"type":"webhook_event","webhook":{"id":"1234567890"},"trigger":"FILE.UPLOADED","source":{"id":"1234567890","type":"file","name":"Test.txt"}}`
	boxHeader := http.Header{
		"Box-Delivery-Id":         {"f96bb54b-ee16-4fc5-aa65-8c2d9e5b546f"},
		"Box-Delivery-Timestamp":  {"2020-01-01T00:00:00-07:00"},
		"Box-Signature-Algorithm": {"HmacSHA256"},
		"Box-Signature-Primary":   {"6TfeAW3A1PASkgboxxA5yqHNKOwFyMWuEXny/FPD5hI="},
		"Box-Signature-Secondary": {"v+1CD1Jdo3muIcbpv5lxxgPglOqMfsNHPV899xWYydo="},
		"Box-Signature-Version":   {"1"},
	}
	const slackExampleBody = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	for _, tc := range []struct {
		name, preset, secret, body string
		header                     http.Header
		now                        time.Time
		want                       error
	}{
		// openai/openai-python tests/api_resources/test_webhooks.py
		{
			name: "openai", preset: "openai", secret: "whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c=",
			body: `{"id": "evt_685c059ae3a481909bdc86819b066fb6", "object": "event", "created_at": 1750861210, "type": "response.completed", "data": {"id": "resp_123"}}`,
			header: http.Header{
				"Webhook-Id":        {"wh_685c059ae39c8190af8c71ed1022a24d"},
				"Webhook-Timestamp": {"1750861210"},
				"Webhook-Signature": {"v1,gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY="},
			},
			now: time.Unix(1750861210, 0),
		},
		{
			name: "openai, another id", preset: "openai", secret: "whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c=",
			body: `{"id": "evt_685c059ae3a481909bdc86819b066fb6", "object": "event", "created_at": 1750861210, "type": "response.completed", "data": {"id": "resp_123"}}`,
			header: http.Header{
				"Webhook-Id":        {"wh_685c059ae39c8190af8c71ed1022a24e"},
				"Webhook-Timestamp": {"1750861210"},
				"Webhook-Signature": {"v1,gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY="},
			},
			now: time.Unix(1750861210, 0), want: verify.ErrMismatch,
		},
		// discourse/discourse spec/jobs/emit_web_hook_event_spec.rb, with the
		// secret of spec/fabricators/web_hook_fabricator.rb
		{
			name: "discourse ping", preset: "discourse", secret: "my_lovely_secret_for_web_hook", body: `{"ping":"OK"}`,
			header: http.Header{"X-Discourse-Event-Signature": {"sha256=162f107f6b5022353274eb1a7197885cfd35744d8d08e5bcea025d309386b7d6"}},
		},
		{
			name: "discourse, other secret", preset: "discourse", secret: "my_lovely_secret_for_web_hooks", body: `{"ping":"OK"}`,
			header: http.Header{"X-Discourse-Event-Signature": {"sha256=162f107f6b5022353274eb1a7197885cfd35744d8d08e5bcea025d309386b7d6"}},
			want:   verify.ErrMismatch,
		},
		// coinbase/coinbase-commerce-node test/testWebhook.spec.js
		{
			name: "coinbase commerce", preset: "coinbase_commerce", secret: "30291a20-0bd1-4267-9b0f-e6e7b123c0bf", body: coinbaseBody,
			header: http.Header{"X-Cc-Webhook-Signature": {"8be7742c7d372f08a6a3224edadf18a22b65fa9e28f3f2de97376cdaa092590d"}},
		},
		{
			name: "coinbase commerce, invalid secret", preset: "coinbase_commerce", secret: "30291a20-0bd1-4267-9b0f-e6e7b123c0bg", body: coinbaseBody,
			header: http.Header{"X-Cc-Webhook-Signature": {"8be7742c7d372f08a6a3224edadf18a22b65fa9e28f3f2de97376cdaa092590d"}},
			want:   verify.ErrMismatch,
		},
		// onfido/onfido-node test/webhook-event-verifier.test.ts
		{
			name: "onfido", preset: "onfido", secret: "_ABC123abc123ABC123abc123ABC123_", body: onfidoBody,
			header: http.Header{"X-Sha2-Signature": {"a0082d7481f9f0a2907583dbe1f344d6d4c0d9989df2fd804f98479f60cd760e"}},
		},
		{
			name: "onfido, invalid signature", preset: "onfido", secret: "_ABC123abc123ABC123abc123ABC123_", body: onfidoBody,
			header: http.Header{"X-Sha2-Signature": {"b0082d7481f9f0a2907583dbe1f344d6d4c0d9989df2fd804f98479f60cd760e"}},
			want:   verify.ErrMismatch,
		},
		// pusher/pusher-http-go webhook_test.go
		{
			name: "pusher", preset: "pusher", secret: "secret", body: `{"hello":"world"}`,
			header: http.Header{"X-Pusher-Key": {"key"}, "X-Pusher-Signature": {"2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778"}},
		},
		{
			name: "pusher, improper signature", preset: "pusher", secret: "secret", body: `{"hello":"world"}`,
			header: http.Header{"X-Pusher-Key": {"key"}, "X-Pusher-Signature": {"2677ad3e7c090i'mgonnagetyaeb356a2d60fb9073bc778"}},
			want:   verify.ErrMalformed,
		},
		// Slack's worked example, "Verifying requests from Slack"
		// (docs.slack.dev/authentication/verifying-requests-from-slack)
		{
			name: "slack", preset: "slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", body: slackExampleBody,
			header: http.Header{"X-Slack-Request-Timestamp": {"1531420618"}, "X-Slack-Signature": {"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}},
			now:    time.Unix(1531420618, 0),
		},
		{
			name: "slack, another timestamp", preset: "slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", body: slackExampleBody,
			header: http.Header{"X-Slack-Request-Timestamp": {"1531420619"}, "X-Slack-Signature": {"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}},
			now:    time.Unix(1531420618, 0), want: verify.ErrMismatch,
		},
		{
			name: "slack, a day later", preset: "slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", body: slackExampleBody,
			header: http.Header{"X-Slack-Request-Timestamp": {"1531420618"}, "X-Slack-Signature": {"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}},
			now:    time.Unix(1531420618+86400, 0), want: verify.ErrTimestamp,
		},
		// muxinc/mux-node, mux-ruby and mux-elixir webhook tests: "generated
		// from Mux's backend code" (secret SuperSecret123, time 1565125718)
		{
			name: "mux", preset: "mux", secret: "SuperSecret123", body: `{"test":"body"}`,
			header: http.Header{"Mux-Signature": {"t=1565125718,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7"}},
			now:    time.Unix(1565125718, 0),
		},
		{
			name: "mux, other body", preset: "mux", secret: "SuperSecret123", body: `{"test":"body2"}`,
			header: http.Header{"Mux-Signature": {"t=1565125718,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7"}},
			now:    time.Unix(1565125718, 0), want: verify.ErrMismatch,
		},
		{
			name: "mux, an hour later", preset: "mux", secret: "SuperSecret123", body: `{"test":"body"}`,
			header: http.Header{"Mux-Signature": {"t=1565125718,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7"}},
			now:    time.Unix(1565125718+3600, 0), want: verify.ErrTimestamp,
		},
		// box/box-python-sdk, the unit test of Webhook.validate_message
		// (its body is the test's dict as json.dumps writes it compactly)
		{
			name: "box, primary key", preset: "box", secret: "SamplePrimaryKey", body: boxBody, header: boxHeader,
			now: time.Date(2020, 1, 1, 7, 0, 0, 0, time.UTC),
		},
		{
			name: "box, secondary key", preset: "box", secret: "SampleSecondaryKey", body: boxBody, header: boxHeader,
			now: time.Date(2020, 1, 1, 7, 0, 0, 0, time.UTC),
		},
		{
			name: "box, another key", preset: "box", secret: "IncorrectKey", body: boxBody, header: boxHeader,
			now: time.Date(2020, 1, 1, 7, 0, 0, 0, time.UTC), want: verify.ErrMismatch,
		},
		{
			name: "box, a day later", preset: "box", secret: "SamplePrimaryKey", body: boxBody, header: boxHeader,
			now: time.Date(2020, 1, 2, 7, 0, 0, 0, time.UTC), want: verify.ErrTimestamp,
		},
		// razorpay/razorpay-node test/utils/razorpay-utils.spec.js
		{
			name: "razorpay", preset: "razorpay", secret: "123456", body: `{"a":1,"b":2,"c":{"d":3}}`,
			header: http.Header{"X-Razorpay-Signature": {"2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc"}},
		},
		{
			name: "razorpay, wrong signature", preset: "razorpay", secret: "123456", body: `{"a":1,"b":2,"c":{"d":3}}`,
			header: http.Header{"X-Razorpay-Signature": {"sdfafds"}},
			want:   verify.ErrMalformed,
		},
	} {
		now := tc.now
		if now.IsZero() {
			now = fixedNow
		}
		v, err := verify.New(verify.Spec{Method: tc.preset, Secrets: []string{tc.secret}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(tc.body)
		err = v.Verify(newRequest(tc.header, body), body)
		if tc.want == nil && err != nil {
			t.Errorf("%s: rejected: %v", tc.name, err)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestStandardSenderLibraries signs with the libraries these providers
// document (Standard Webhooks, Svix) and checks that the libraries accept
// what the test signers produce, so signer and preset agree with them.
func TestStandardSenderLibraries(t *testing.T) {
	for _, tc := range []struct {
		name string
		svix bool
	}{{"openai", false}, {"replicate", false}, {"gitlab_signed", false}, {"clerk", true}, {"resend", true}} {
		v, err := verify.New(verify.Spec{Method: tc.name, Secrets: []string{whsecB, whsecA}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var sign func(id string, ts time.Time, body []byte) (string, error)
		var check func(body []byte, h http.Header) error
		family := "Webhook-"
		if tc.svix {
			wh, err := svix.NewWebhook(whsecA)
			if err != nil {
				t.Fatal(err)
			}
			sign, check, family = wh.Sign, wh.Verify, "Svix-"
		} else {
			wh, err := standardwebhooks.NewWebhook(whsecA)
			if err != nil {
				t.Fatal(err)
			}
			sign, check = wh.Sign, wh.Verify
		}
		for _, body := range [][]byte{trapBody, []byte(`{"type":"response.completed","data":{"id":"resp_1"}}`)} {
			sig, err := sign("msg_lib_1", now, body)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{family + "Id": {"msg_lib_1"}, family + "Timestamp": {strconv.FormatInt(now.Unix(), 10)}, family + "Signature": {sig}}
			if err := v.Verify(newRequest(h, body), body); err != nil {
				t.Errorf("%s: library signature rejected: %v", tc.name, err)
			}
			tampered := append([]byte(nil), body...)
			tampered[len(tampered)-2] ^= 1
			if err := v.Verify(newRequest(h, tampered), tampered); !errors.Is(err, verify.ErrMismatch) {
				t.Errorf("%s: library signature over another body: %v", tc.name, err)
			}
			old := now.Add(-10 * time.Minute)
			sig, _ = sign("msg_lib_1", old, body)
			h.Set(family+"Timestamp", strconv.FormatInt(old.Unix(), 10))
			h.Set(family+"Signature", sig)
			if err := v.Verify(newRequest(h, body), body); !errors.Is(err, verify.ErrTimestamp) {
				t.Errorf("%s: stale library signature: %v", tc.name, err)
			}
		}
		// the signer of the case table, checked by the library
		h := standardSigner(tc.svix)(whsecA, now, trapBody)
		if err := check(trapBody, h); err != nil {
			t.Errorf("%s: the library rejects the test signer: %v", tc.name, err)
		}
	}
}

func TestPersonaRotation(t *testing.T) {
	v := mustNew(t, verify.Spec{Method: "persona", Secrets: []string{"wbhsec_new"}})
	ts := unix(fixedNow)
	sig := func(secret string) string { return hexEnc(mac(sha256.New, []byte(secret), ts, ".", string(trapBody))) }
	for name, tc := range map[string]struct {
		header string
		want   error
	}{
		"new key second":      {"t=" + ts + ",v1=" + sig("wbhsec_old") + " t=" + ts + ",v1=" + sig("wbhsec_new"), nil},
		"new key first":       {"t=" + ts + ",v1=" + sig("wbhsec_new") + " t=" + ts + ",v1=" + sig("wbhsec_old"), nil},
		"only the old key":    {"t=" + ts + ",v1=" + sig("wbhsec_old"), verify.ErrMismatch},
		"timestamps disagree": {"t=" + ts + ",v1=" + sig("wbhsec_old") + " t=" + unix(fixedNow.Add(time.Second)) + ",v1=" + sig("wbhsec_new"), verify.ErrMalformed},
		"group without t":     {"t=" + ts + ",v1=" + sig("wbhsec_old") + " v1=" + sig("wbhsec_new"), verify.ErrMalformed},
	} {
		err := v.Verify(newRequest(http.Header{"Persona-Signature": {tc.header}}, trapBody), trapBody)
		if tc.want == nil && err != nil {
			t.Errorf("%s: rejected: %v", name, err)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}
