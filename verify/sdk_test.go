package verify_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	paddle "github.com/PaddleHQ/paddle-go-sdk/v4"
	"github.com/google/go-github/v84/github"
	"github.com/slack-go/slack"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v84/webhook"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/caddy-webhooks/gateway/verify"
)

// These tests take signatures from the providers' own SDKs, or use the
// SDK's verifier as an oracle that must agree with ours.

// toleranceEdges are timestamps around the default 5-minute tolerance, in
// whole seconds from now: one second inside and one second outside each
// edge, in the past and in the future.
var toleranceEdges = []struct {
	name   string
	offset int64
	inside bool
}{
	{"now", 0, true},
	{"1s inside the past edge", -299, true},
	{"1s past the past edge", -301, false},
	{"1s inside the future edge", 299, true},
	{"1s past the future edge", 301, false},
}

// atFreshSecond runs check with the current unix second, just begun, so
// the SDKs (which read the real clock) see the same second as the
// verifier given now; when the second changed before check returned, it
// runs again (up to 5 times). check returns its problems, reported once.
func atFreshSecond(t *testing.T, check func(now int64) []string) {
	t.Helper()
	for range 5 {
		time.Sleep(time.Until(time.Unix(time.Now().Unix()+1, 0)))
		now := time.Now().Unix()
		problems := check(now)
		if time.Now().Unix() != now {
			continue
		}
		for _, p := range problems {
			t.Error(p)
		}
		return
	}
	t.Fatal("the clock never stayed within one second for a check")
}

// fixedAt is a verifier clock at the unix second now.
func fixedAt(now int64) func() time.Time { return func() time.Time { return time.Unix(now, 0) } }

func TestStripeSDK(t *testing.T) {
	const secret = "whsec_test_secret"
	atFreshSecond(t, func(now int64) (problems []string) {
		v, err := verify.New(verify.Spec{Method: "stripe", Secrets: []string{secret}, Now: fixedAt(now)})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range toleranceEdges {
			signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: trapBody, Secret: secret, Timestamp: time.Unix(now+tc.offset, 0)})
			err := v.Verify(newRequest(http.Header{"Stripe-Signature": {signed.Header}}, trapBody), trapBody)
			if tc.inside && err != nil || !tc.inside && !errors.Is(err, verify.ErrTimestamp) {
				problems = append(problems, fmt.Sprintf("%s: gateway says %v, want inside=%v", tc.name, err, tc.inside))
			}
			// stripe-go checks the age only: a future timestamp is never
			// too old for it, while the gateway holds both directions
			sdkErr := webhook.ValidatePayloadWithTolerance(trapBody, signed.Header, secret, 5*time.Minute)
			sdkInside := tc.inside || tc.offset > 0
			if (sdkErr == nil) != sdkInside {
				problems = append(problems, fmt.Sprintf("%s: stripe-go says %v, want inside=%v", tc.name, sdkErr, sdkInside))
			}
		}
		return problems
	})
	v, err := verify.New(verify.Spec{Method: "stripe", Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	// tampered body and wrong secret, as stripe-go signs them
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: trapBody, Secret: "whsec_other"})
	if err := v.Verify(newRequest(http.Header{"Stripe-Signature": {signed.Header}}, trapBody), trapBody); !errors.Is(err, verify.ErrMismatch) {
		t.Errorf("wrong secret: %v", err)
	}
	signed = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: trapBody, Secret: secret})
	tampered := bytes.Replace(trapBody, []byte("1.50"), []byte("1.5"), 1)
	if err := v.Verify(newRequest(http.Header{"Stripe-Signature": {signed.Header}}, tampered), tampered); !errors.Is(err, verify.ErrMismatch) {
		t.Errorf("tampered: %v", err)
	}
}

func TestStandardWebhooksLibraries(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	std, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sx, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"standard", "svix"} {
		v, err := verify.New(verify.Spec{Method: method, Secrets: []string{"whsec_b3RoZXIgc2VjcmV0IGtleQ==", secret}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		sig, err := std.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", now, trapBody)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("webhook-signature", sig)
		if err := v.Verify(newRequest(h, trapBody), trapBody); err != nil {
			t.Errorf("%s: Standard Webhooks library signature rejected: %v", method, err)
		}
		if err := std.Verify(trapBody, h); err != nil {
			t.Errorf("library rejects its own request: %v", err)
		}
		// svix headers, signed by the svix library
		sig, err = sx.Sign("msg_svix", now, trapBody)
		if err != nil {
			t.Fatal(err)
		}
		hs := http.Header{}
		hs.Set("svix-id", "msg_svix")
		hs.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
		hs.Set("svix-signature", sig)
		if err := v.Verify(newRequest(hs, trapBody), trapBody); err != nil {
			t.Errorf("%s: svix library signature rejected: %v", method, err)
		}
		// the id is signed: changing it breaks the signature
		hs.Set("svix-id", "msg_other")
		if err := v.Verify(newRequest(hs, trapBody), trapBody); !errors.Is(err, verify.ErrMismatch) {
			t.Errorf("%s: changed id: %v", method, err)
		}
		// stale, signed by the library
		old := now.Add(-10 * time.Minute)
		sig, _ = std.Sign("msg_old", old, trapBody)
		h.Set("webhook-id", "msg_old")
		h.Set("webhook-timestamp", strconv.FormatInt(old.Unix(), 10))
		h.Set("webhook-signature", sig)
		if err := v.Verify(newRequest(h, trapBody), trapBody); !errors.Is(err, verify.ErrTimestamp) {
			t.Errorf("%s: stale: %v", method, err)
		}
		if std.Verify(trapBody, h) == nil {
			t.Error("library accepts a stale request; the oracle is not what it seems")
		}
	}
}

// TestSlackOracle: slack-go's SecretsVerifier and the gateway must both
// accept the valid requests (every body, timestamps one second inside the
// tolerance) and both reject the others.
func TestSlackOracle(t *testing.T) {
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	bodies := map[string][]byte{
		"json":  trapBody,
		"form":  []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&text=%3Ccaf%C3%A9%3E&payload=%7B%22a%22%3A1%7D"),
		"empty": {},
	}
	atFreshSecond(t, func(now int64) (problems []string) {
		v, err := verify.New(verify.Spec{Method: "slack", Secrets: []string{secret}, Now: fixedAt(now)})
		if err != nil {
			t.Fatal(err)
		}
		type attempt struct {
			name   string
			secret string
			offset int64
			valid  bool
		}
		attempts := []attempt{{"wrong secret", "wrong", 0, false}}
		for _, e := range toleranceEdges {
			attempts = append(attempts, attempt{e.name, secret, e.offset, e.inside})
		}
		for name, body := range bodies {
			for _, tc := range attempts {
				ts := strconv.FormatInt(now+tc.offset, 10)
				h := http.Header{}
				h.Set("X-Slack-Request-Timestamp", ts)
				h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac(sha256.New, []byte(tc.secret), "v0:", ts, ":", string(body))))
				ours := v.Verify(newRequest(h, body), body)
				sv, err := slack.NewSecretsVerifier(h, secret)
				theirs := err
				if err == nil {
					_, _ = sv.Write(body)
					theirs = sv.Ensure()
				}
				if (ours == nil) != tc.valid || (theirs == nil) != tc.valid {
					problems = append(problems, fmt.Sprintf("%s, %s: gateway says %v, slack-go says %v, want valid=%v", name, tc.name, ours, theirs, tc.valid))
				}
			}
		}
		return problems
	})
}

// TestPaddleOracle: the Paddle SDK's WebhookVerifier and the gateway must
// both accept the valid requests and both reject the others.
func TestPaddleOracle(t *testing.T) {
	const secret = "pdl_ntfset_01gkpjp8bkh3a5x4kq1ht8jg1a_secret"
	oracle := paddle.NewWebhookVerifier(secret, paddle.VerifierWithTimestampTolerance(5*time.Minute))
	atFreshSecond(t, func(now int64) (problems []string) {
		v, err := verify.New(verify.Spec{Method: "paddle", Secrets: []string{secret}, Now: fixedAt(now)})
		if err != nil {
			t.Fatal(err)
		}
		type attempt struct {
			name   string
			secret string
			offset int64
			body   []byte
			valid  bool
		}
		attempts := []attempt{
			{"wrong secret", "other", 0, trapBody, false},
			{"empty body", secret, 0, []byte{}, true},
		}
		for _, e := range toleranceEdges {
			attempts = append(attempts, attempt{e.name, secret, e.offset, trapBody, e.inside})
		}
		for _, tc := range attempts {
			ts := strconv.FormatInt(now+tc.offset, 10)
			h := http.Header{"Paddle-Signature": {"ts=" + ts + ";h1=" + hex.EncodeToString(mac(sha256.New, []byte(tc.secret), ts, ":", string(tc.body)))}}
			ours := v.Verify(newRequest(h, tc.body), tc.body)
			ok, theirs := oracle.Verify(newRequest(h, tc.body))
			if (ours == nil) != tc.valid || (ok && theirs == nil) != tc.valid {
				problems = append(problems, fmt.Sprintf("%s: gateway says %v, the Paddle SDK says %v %v, want valid=%v", tc.name, ours, ok, theirs, tc.valid))
			}
		}
		return problems
	})
}

func TestGitHubOracle(t *testing.T) {
	v, err := verify.New(verify.Spec{Method: "github", Secrets: []string{"It's a Secret to Everybody"}})
	if err != nil {
		t.Fatal(err)
	}
	// GitHub's published test vector
	// (docs.github.com, "Testing the webhook payload validation").
	body := []byte("Hello, World!")
	const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	r := newRequest(http.Header{"X-Hub-Signature-256": {sig}}, body)
	if err := v.Verify(r, body); err != nil {
		t.Errorf("GitHub's documented example rejected: %v", err)
	}
	if err := github.ValidateSignature(sig, body, []byte("It's a Secret to Everybody")); err != nil {
		t.Errorf("go-github rejects the documented example: %v", err)
	}
	for _, bad := range []string{"sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "sha256=757107ea"} {
		ours := v.Verify(newRequest(http.Header{"X-Hub-Signature-256": {bad}}, body), body)
		theirs := github.ValidateSignature(bad, body, []byte("It's a Secret to Everybody"))
		if ours == nil || theirs == nil {
			t.Errorf("%q: we say %v, go-github says %v", bad, ours, theirs)
		}
	}
}
