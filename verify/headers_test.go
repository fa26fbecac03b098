package verify_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/verify"
)

func TestHeaders(t *testing.T) {
	for _, tc := range []struct {
		spec verify.Spec
		want []string
	}{
		{verify.Spec{Method: "basic"}, []string{"Authorization"}},
		{verify.Spec{Method: "api_key"}, []string{"X-Api-Key"}},
		{verify.Spec{Method: "api_key", Header: "token"}, []string{"Token"}},
		{verify.Spec{Method: "api_key", Bearer: true}, []string{"Authorization"}},
		{verify.Spec{Method: "api_key", Query: "key"}, nil},
		{
			verify.Spec{Method: "hmac", Header: "X-Sig", TimestampHeader: "X-Ts", Signed: "{header.X-Nonce}.{timestamp}.{body}"},
			[]string{"X-Nonce", "X-Sig", "X-Ts"},
		},
		{verify.Spec{Method: "github"}, []string{"X-Hub-Signature-256"}},
		{verify.Spec{Method: "gitlab"}, []string{"X-Gitlab-Token"}},
		{verify.Spec{Method: "slack"}, []string{"X-Slack-Request-Timestamp", "X-Slack-Signature"}},
		{verify.Spec{Method: "standard"}, []string{"Svix-Id", "Svix-Signature", "Svix-Timestamp", "Webhook-Id", "Webhook-Signature", "Webhook-Timestamp"}},
		{verify.Spec{Method: "box"}, []string{"Box-Delivery-Timestamp", "Box-Signature-Algorithm", "Box-Signature-Primary", "Box-Signature-Secondary", "Box-Signature-Version"}},
		{verify.Spec{Method: "mailgun"}, nil},
		{verify.Spec{Method: "vonage"}, []string{"Authorization"}},
		{verify.Spec{Method: "nonesuch"}, nil},
	} {
		got := verify.Headers(tc.spec)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Headers(%s %+v) = %q, want %q", tc.spec.Method, tc.spec, got, tc.want)
		}
	}
}

// Every preset whose signature travels in a header lists that header.
func TestHeadersOfEveryPreset(t *testing.T) {
	for _, name := range verify.Presets() {
		p, _ := verify.Lookup(name)
		got := verify.Headers(verify.Spec{Method: name})
		for _, h := range []string{p.SignatureHeader, p.TimestampHeader} {
			if h == "" || strings.HasPrefix(h, "body:") {
				continue
			}
			if !slices.Contains(got, http.CanonicalHeaderKey(h)) {
				t.Errorf("%s: Headers = %q, missing %s", name, got, h)
			}
		}
	}
}
