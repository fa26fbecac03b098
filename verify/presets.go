package verify

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// presets is the registry of provider schemes. Adding a provider is adding
// a row here, a test, and a line in docs/providers.md.
var presets = map[string]Preset{}

func init() {
	register([]Preset{
		{
			Name: "github", Docs: "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries",
			IDHeader: "X-GitHub-Delivery", SignatureHeader: "X-Hub-Signature-256",
			Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
		},
		{
			Name: "gitlab", Docs: "https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token",
			IDHeader: "X-Gitlab-Event-UUID", SignatureHeader: "X-Gitlab-Token", Algorithm: "token",
		},
		{
			Name: "stripe", Docs: "https://docs.stripe.com/webhooks#verify-manually",
			SignatureHeader: "Stripe-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v1"), Signed: "{timestamp}.{body}",
		},
		{
			Name: "slack", Docs: "https://api.slack.com/authentication/verifying-requests-from-slack",
			SignatureHeader: "X-Slack-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "v0=",
			TimestampHeader: "X-Slack-Request-Timestamp", Signed: "v0:{timestamp}:{body}",
		},
		{
			Name: "shopify", Docs: "https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook",
			IDHeader: "X-Shopify-Webhook-Id", SignatureHeader: "X-Shopify-Hmac-Sha256",
			Algorithm: "sha256", Encoding: "base64",
		},
		standardPreset("standard"),
		standardPreset("svix"),
		{
			Name: "paddle", Docs: "https://developer.paddle.com/webhooks/signature-verification",
			SignatureHeader: "Paddle-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(";", "ts", "h1"), Signed: "{timestamp}:{body}",
		},
		{
			Name: "linear", Docs: "https://linear.app/developers/webhooks#securing-webhooks",
			IDHeader: "Linear-Delivery", SignatureHeader: "Linear-Signature",
			Algorithm: "sha256", Encoding: "hex", Check: checkLinearTimestamp,
		},
		{
			Name: "pagerduty", Docs: "https://developer.pagerduty.com/docs/webhooks-v3-overview#verifying-signatures",
			IDHeader: "X-Webhook-Id", SignatureHeader: "X-PagerDuty-Signature",
			Algorithm: "sha256", Encoding: "hex", Parse: parsePrefixedList(",", "v1="),
		},
		{
			Name: "typeform", Docs: "https://www.typeform.com/developers/webhooks/secure-your-webhooks/",
			SignatureHeader: "Typeform-Signature", Algorithm: "sha256", Encoding: "base64", Prefix: "sha256=",
		},
		{
			Name: "intercom", Docs: "https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-notifications",
			SignatureHeader: "X-Hub-Signature", Algorithm: "sha1", Encoding: "hex", Prefix: "sha1=",
		},
		{
			Name: "zoom", Docs: "https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events",
			SignatureHeader: "x-zm-signature", Algorithm: "sha256", Encoding: "hex", Prefix: "v0=",
			TimestampHeader: "x-zm-request-timestamp", Signed: "v0:{timestamp}:{body}",
		},
		{
			Name: "discord", Docs: "https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers",
			SignatureHeader: "X-Signature-Ed25519", Algorithm: "ed25519", Encoding: "hex",
			TimestampHeader: "X-Signature-Timestamp", Signed: "{timestamp}{body}",
		},
	}...)
}

// register adds presets to the registry; each file of presets calls it
// from its init.
func register(ps ...Preset) {
	for _, p := range ps {
		if _, dup := presets[p.Name]; dup {
			panic("verify: preset " + p.Name + " registered twice")
		}
		if p.Docs == "" {
			panic("verify: preset " + p.Name + " has no documentation link")
		}
		presets[p.Name] = p
	}
}

// standardPreset is Standard Webhooks (and Svix, which it came from):
// "whsec_"+base64 secrets, a space-separated "v1,<base64>" list, and
// "<id>.<timestamp>.<body>" signed. Both header families are read.
func standardPreset(name string) Preset {
	return Preset{
		Name: name, Docs: "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md",
		IDHeader: "webhook-id", SignatureHeader: "webhook-signature",
		Aliases: map[string]string{
			"webhook-id": "svix-id", "webhook-timestamp": "svix-timestamp", "webhook-signature": "svix-signature",
		},
		Algorithm: "sha256", Encoding: "base64",
		Parse:           parsePrefixedList(" ", "v1,"),
		TimestampHeader: "webhook-timestamp",
		Signed:          "{header.webhook-id}.{timestamp}.{body}",
		Secret:          decodeWhsec,
	}
}

// decodeWhsec decodes "whsec_<base64>" (the prefix is optional).
func decodeWhsec(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("must be whsec_ followed by base64")
	}
	return key, nil
}

// parseKeyValueList parses "t=1,v1=a,v1=b" style headers: one timestamp
// key, any number of signature keys; other keys (v0, ...) are ignored.
func parseKeyValueList(sep, tsKey, sigKey string) func(string) (string, []string, bool) {
	return func(v string) (string, []string, bool) {
		var ts string
		var sigs []string
		items, stamps := 0, 0
		for item := range strings.SplitSeq(v, sep) {
			if items++; items > 4*maxCandidates {
				return "", nil, false
			}
			k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok {
				return "", nil, false
			}
			switch k {
			case tsKey:
				// one timestamp, even when an earlier one was empty
				if stamps++; stamps > 1 {
					return "", nil, false
				}
				ts = val
			case sigKey:
				sigs = append(sigs, val)
			}
		}
		return ts, sigs, ts != "" && len(sigs) > 0
	}
}

// parsePrefixedList parses "v1=a,v1=b" or "v1,a v1,b": items with the
// version prefix are candidates, others (other versions) are skipped.
func parsePrefixedList(sep, prefix string) func(string) (string, []string, bool) {
	return func(v string) (string, []string, bool) {
		var sigs []string
		items := 0
		for item := range strings.SplitSeq(v, sep) {
			if items++; items > 4*maxCandidates {
				return "", nil, false
			}
			if sig, ok := strings.CutPrefix(strings.TrimSpace(item), prefix); ok {
				sigs = append(sigs, sig)
			}
		}
		return "", sigs, len(sigs) > 0
	}
}

// checkLinearTimestamp checks the webhookTimestamp (unix milliseconds) that
// Linear puts in the signed body, when present, against the tolerance.
func checkLinearTimestamp(body []byte, tolerance time.Duration, now time.Time) error {
	ts := gjson.GetBytes(body, "webhookTimestamp")
	if !ts.Exists() {
		return nil
	}
	if ts.Type != gjson.Number {
		return fmt.Errorf("webhookTimestamp %w", ErrMalformed)
	}
	// the raw digits, not gjson's Int, which saturates or wraps far-off values
	ms, err := parseUnix(ts.Raw)
	if err != nil {
		return fmt.Errorf("webhookTimestamp: %w", err)
	}
	return within(time.UnixMilli(ms), now, tolerance)
}
