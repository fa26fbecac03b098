package verify_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	paddle "github.com/PaddleHQ/paddle-go-sdk/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-github/v84/github"
	"github.com/mailgun/mailgun-go/v4"
	"github.com/slack-go/slack"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v84/webhook"
	svix "github.com/svix/svix-webhooks/go"
	twilio "github.com/twilio/twilio-go/client"

	"github.com/caddy-webhooks/gateway/verify"
)

const signURL = "https://hooks.example.com/in/pets?x=1"

// signSecret is a secret in the form a preset expects.
func signSecret(name string) string {
	p, _ := verify.Lookup(name)
	switch {
	case p.SignatureHeader == "webhook-signature":
		return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	case name == "teams":
		return base64.StdEncoding.EncodeToString([]byte("teams security token"))
	case name == "adyen":
		return "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
	}
	return "It's a Secret to Everybody"
}

// signBody is a body the preset's scheme can carry.
func signBody(name string) []byte {
	switch name {
	case "adyen":
		return []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"currency":"EUR","value":1130},"eventCode":"AUTHORISATION","merchantAccountCode":"TestMerchant","merchantReference":"ref-1","pspReference":"7914073381342284","success":"true"}}]}`)
	}
	return trapBody
}

// signedRequest builds the request Sign describes.
func signedRequest(t *testing.T, s *verify.SignedRequest, contentType string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, s.URL, bytes.NewReader(s.Body))
	r.Header.Set("Content-Type", contentType)
	for k, v := range s.Header {
		r.Header[k] = v
	}
	return r
}

// TestSignEveryPreset signs with every preset that can be signed and
// checks the request with the verifier of the same preset; a wrong secret
// and a stale time must fail it. The presets that cannot be signed are
// exactly the public-key ones.
func TestSignEveryPreset(t *testing.T) {
	var unsignable []string
	for _, name := range verify.Presets() {
		ok, why := verify.Signable(name)
		if !ok {
			unsignable = append(unsignable, name)
			_, err := verify.Sign(name, "k", verify.SignInput{URL: signURL, Body: trapBody})
			if !errors.Is(err, verify.ErrNotSignable) || !strings.Contains(err.Error(), why) {
				t.Errorf("%s: Sign says %v, want ErrNotSignable with %q", name, err, why)
			}
			continue
		}
		secret := signSecret(name)
		body := signBody(name)
		s, err := verify.Sign(name, secret, verify.SignInput{URL: signURL, Body: body})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		r := signedRequest(t, s, "application/json")
		v := mustNew(t, verify.Spec{Method: name, Secrets: []string{secret}, Now: time.Now})
		if err := v.Verify(r, s.Body); err != nil {
			t.Errorf("%s: our verifier rejects the signed request: %v (headers %v)", name, err, s.Header)
		}
		other := mustNew(t, verify.Spec{Method: name, Secrets: []string{otherSecret(secret)}, Now: time.Now})
		if err := other.Verify(signedRequest(t, s, "application/json"), s.Body); err == nil {
			t.Errorf("%s: a request signed with another secret passes", name)
		}
		// a time outside the tolerance fails where the scheme signs one
		old, err := verify.Sign(name, secret, verify.SignInput{URL: signURL, Body: body, Time: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		err = v.Verify(signedRequest(t, old, "application/json"), old.Body)
		p, _ := verify.Lookup(name)
		stamped := p.TimestampHeader != "" || strings.Contains(p.Signed, "{timestamp}") || name == "mailgun" || name == "vonage"
		if stamped && !errors.Is(err, verify.ErrTimestamp) {
			t.Errorf("%s: signed an hour ago: %v, want ErrTimestamp", name, err)
		}
		if !stamped && err != nil {
			t.Errorf("%s: signs no time, yet an hour-old signature fails: %v", name, err)
		}
	}
	if want := []string{"discord", "sendgrid", "telnyx"}; !slices.Equal(unsignable, want) {
		t.Errorf("unsignable presets %v, want %v (the public-key schemes)", unsignable, want)
	}
}

// otherSecret is a different secret in the same form.
func otherSecret(secret string) string {
	switch {
	case strings.HasPrefix(secret, "whsec_"):
		return "whsec_b3RoZXIgc2VjcmV0IGtleQ=="
	case strings.HasSuffix(secret, "="):
		return base64.StdEncoding.EncodeToString([]byte("other"))
	case strings.ToUpper(secret) == secret:
		return "00" + secret[2:]
	}
	return "other secret"
}

// TestSignPublishedVector: GitHub's documented example
// (docs.github.com, "Testing the webhook payload validation").
func TestSignPublishedVector(t *testing.T) {
	s, err := verify.Sign("github", "It's a Secret to Everybody", verify.SignInput{Body: []byte("Hello, World!")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Header.Get("X-Hub-Signature-256"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if s.Header.Get("X-GitHub-Delivery") == "" {
		t.Error("no X-GitHub-Delivery")
	}
}

// TestSignPublishedVectors: the signer reproduces signatures the
// providers' own SDKs and test suites publish (the same vectors as
// TestPublishedVectors).
func TestSignPublishedVectors(t *testing.T) {
	const (
		openaiBody = `{"id": "evt_685c059ae3a481909bdc86819b066fb6", "object": "event", "created_at": 1750861210, "type": "response.completed", "data": {"id": "resp_123"}}`
		onfidoBody = `{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"check-123","status":"complete","completed_at_iso8601":"2020-01-01T00:00:00Z","href":"https://api.onfido.com/v3/checks/check-123"}}}`
	)
	for _, tc := range []struct {
		preset, secret, body, id string
		at                       time.Time
		header, want             string
	}{
		// openai/openai-python tests/api_resources/test_webhooks.py
		{"openai", "whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c=", openaiBody, "wh_685c059ae39c8190af8c71ed1022a24d", time.Unix(1750861210, 0), "Webhook-Signature", "v1,gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY="},
		// discourse/discourse spec/jobs/emit_web_hook_event_spec.rb
		{"discourse", "my_lovely_secret_for_web_hook", `{"ping":"OK"}`, "", time.Time{}, "X-Discourse-Event-Signature", "sha256=162f107f6b5022353274eb1a7197885cfd35744d8d08e5bcea025d309386b7d6"},
		// onfido/onfido-node test/webhook-event-verifier.test.ts
		{"onfido", "_ABC123abc123ABC123abc123ABC123_", onfidoBody, "", time.Time{}, "X-Sha2-Signature", "a0082d7481f9f0a2907583dbe1f344d6d4c0d9989df2fd804f98479f60cd760e"},
		// pusher/pusher-http-go webhook_test.go
		{"pusher", "secret", `{"hello":"world"}`, "", time.Time{}, "X-Pusher-Signature", "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778"},
		// razorpay/razorpay-node test/utils/razorpay-utils.spec.js
		{"razorpay", "123456", `{"a":1,"b":2,"c":{"d":3}}`, "", time.Time{}, "X-Razorpay-Signature", "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc"},
	} {
		s, err := verify.Sign(tc.preset, tc.secret, verify.SignInput{Body: []byte(tc.body), ID: tc.id, Time: tc.at})
		if err != nil {
			t.Fatalf("%s: %v", tc.preset, err)
		}
		if got := s.Header.Get(tc.header); got != tc.want {
			t.Errorf("%s: %s %q, want %q", tc.preset, tc.header, got, tc.want)
		}
	}
}

// TestSignProviderSDKs checks the signer's output with the providers' own
// SDKs.
func TestSignProviderSDKs(t *testing.T) {
	sign := func(t *testing.T, preset, secret string, body []byte) *verify.SignedRequest {
		t.Helper()
		s, err := verify.Sign(preset, secret, verify.SignInput{URL: signURL, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("github", func(t *testing.T) {
		s := sign(t, "github", "gh-secret", trapBody)
		got, err := github.ValidatePayload(signedRequest(t, s, "application/json"), []byte("gh-secret"))
		if err != nil || !bytes.Equal(got, trapBody) {
			t.Errorf("go-github: %v", err)
		}
	})
	t.Run("stripe", func(t *testing.T) {
		body := []byte(`{"id":"evt_1","object":"event","type":"charge.succeeded","api_version":"2099-01-01","data":{"object":{}}}`)
		s := sign(t, "stripe", "whsec_stripe", body)
		ev, err := webhook.ConstructEventWithOptions(body, s.Header.Get("Stripe-Signature"), "whsec_stripe", webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil || ev.ID != "evt_1" {
			t.Errorf("stripe-go: %v", err)
		}
		if _, err := webhook.ConstructEventWithOptions(body, s.Header.Get("Stripe-Signature"), "whsec_other", webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err == nil {
			t.Error("stripe-go accepts another secret; the oracle is not what it seems")
		}
	})
	t.Run("standard", func(t *testing.T) {
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, preset := range []string{"standard", "openai", "replicate", "gitlab_signed"} {
			s := sign(t, preset, secret, trapBody)
			if err := wh.Verify(trapBody, s.Header); err != nil {
				t.Errorf("%s: standard-webhooks: %v", preset, err)
			}
		}
	})
	t.Run("svix", func(t *testing.T) {
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		wh, err := svix.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, preset := range []string{"svix", "clerk", "resend"} {
			s := sign(t, preset, secret, trapBody)
			if s.Header.Get("svix-id") == "" {
				t.Errorf("%s: no svix-id header: %v", preset, s.Header)
			}
			if err := wh.Verify(trapBody, s.Header); err != nil {
				t.Errorf("%s: svix: %v", preset, err)
			}
		}
	})
	t.Run("slack", func(t *testing.T) {
		s := sign(t, "slack", "8f742231b10e8888abcd99yyyzzz85a5", trapBody)
		sv, err := slack.NewSecretsVerifier(s.Header, "8f742231b10e8888abcd99yyyzzz85a5")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = sv.Write(trapBody)
		if err := sv.Ensure(); err != nil {
			t.Errorf("slack-go: %v", err)
		}
	})
	t.Run("paddle", func(t *testing.T) {
		const secret = "pdl_ntfset_01gkpjp8bkh3a5x4kq1ht8jg1a_secret"
		s := sign(t, "paddle", secret, trapBody)
		ok, err := paddle.NewWebhookVerifier(secret).Verify(signedRequest(t, s, "application/json"))
		if !ok || err != nil {
			t.Errorf("paddle: %v %v", ok, err)
		}
	})
	t.Run("twilio", func(t *testing.T) {
		s := sign(t, "twilio", "12345", trapBody)
		rv := twilio.NewRequestValidator("12345")
		if !rv.ValidateBody(s.URL, trapBody, s.Header.Get("X-Twilio-Signature")) {
			t.Errorf("twilio-go rejects %s", s.URL)
		}
		form := url.Values{"CallSid": {"CA1"}, "From": {"+12349013030"}, "Digits": {"1234"}}
		fs, err := verify.Sign("twilio", "12345", verify.SignInput{URL: signURL, Body: []byte(form.Encode()), ContentType: "application/x-www-form-urlencoded"})
		if err != nil {
			t.Fatal(err)
		}
		params := map[string]string{}
		for k, v := range form {
			params[k] = v[0]
		}
		if !rv.Validate(fs.URL, params, fs.Header.Get("X-Twilio-Signature")) {
			t.Error("twilio-go rejects the form signature")
		}
	})
	t.Run("mailgun", func(t *testing.T) {
		s := sign(t, "mailgun", "mg-key", []byte(`{"event-data":{"event":"delivered"}}`))
		var payload mailgun.WebhookPayload
		if err := json.Unmarshal(s.Body, &payload); err != nil {
			t.Fatal(err)
		}
		mg := mailgun.NewMailgun("mg.example.com", "api-key")
		mg.SetWebhookSigningKey("mg-key")
		if ok, err := mg.VerifyWebhookSignature(payload.Signature); !ok || err != nil {
			t.Errorf("mailgun-go: %v %v", ok, err)
		}
	})
	t.Run("jwt", func(t *testing.T) {
		for _, tc := range []struct{ preset, header, prefix string }{{"netlify", "X-Webhook-Signature", ""}, {"vonage", "Authorization", "Bearer "}} {
			s := sign(t, tc.preset, "jwt-secret", trapBody)
			token, err := jwt.Parse(strings.TrimPrefix(s.Header.Get(tc.header), tc.prefix), func(*jwt.Token) (any, error) { return []byte("jwt-secret"), nil }, jwt.WithValidMethods([]string{"HS256"}))
			if err != nil || !token.Valid {
				t.Errorf("%s: golang-jwt: %v", tc.preset, err)
			}
		}
	})
}
