package verify

import (
	"encoding/base64"
	"errors"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Providers whose schemes are rows of data: HMAC over the body, or over a
// template of timestamp, headers and body; tokens; Standard Webhooks
// senders.
func init() {
	register(
		// Code hosting and CI.
		Preset{
			Name: "bitbucket", Docs: "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
			IDHeader: "X-Request-UUID", SignatureHeader: "X-Hub-Signature",
			Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
		},
		Preset{
			Name: "gitea", Docs: "https://github.com/go-gitea/gitea/blob/main/services/webhook/deliver.go",
			IDHeader: "X-Gitea-Delivery", SignatureHeader: "X-Gitea-Signature",
			Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "forgejo", Docs: "https://codeberg.org/forgejo/forgejo/src/branch/forgejo/services/webhook/deliver.go",
			IDHeader: "X-Forgejo-Delivery", SignatureHeader: "X-Forgejo-Signature",
			Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "gogs", Docs: "https://gogs.io/advancing/webhooks",
			IDHeader: "X-Gogs-Delivery", SignatureHeader: "X-Gogs-Signature",
			Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "circleci", Docs: "https://circleci.com/docs/outbound-webhooks/",
			SignatureHeader: "Circleci-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parsePrefixedList(",", "v1="),
		},
		Preset{
			Name: "buildkite", Docs: "https://buildkite.com/docs/apis/webhooks/pipelines",
			SignatureHeader: "X-Buildkite-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "timestamp", "signature"), Signed: "{timestamp}.{body}",
		},
		Preset{
			Name: "buildkite_token", Docs: "https://buildkite.com/docs/apis/webhooks/pipelines",
			SignatureHeader: "X-Buildkite-Token", Algorithm: "token",
		},
		// Monitoring, hosting and platforms.
		Preset{
			Name: "sentry", Docs: "https://docs.sentry.io/integrations/integration-platform/webhooks/",
			IDHeader: "Request-ID", SignatureHeader: "Sentry-Hook-Signature",
			Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "vercel", Docs: "https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks",
			SignatureHeader: "x-vercel-signature", Algorithm: "sha1", Encoding: "hex",
		},
		Preset{
			Name: "heroku", Docs: "https://devcenter.heroku.com/articles/app-webhooks#securing-webhook-requests",
			IDHeader: "Heroku-Webhook-Id", SignatureHeader: "Heroku-Webhook-Hmac-SHA256",
			Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "terraform", Docs: "https://developer.hashicorp.com/terraform/cloud-docs/api-docs/notification-configurations#notification-authenticity",
			SignatureHeader: "X-TFE-Notification-Signature", Algorithm: "sha512", Encoding: "hex",
		},
		// Scheduling, productivity, collaboration.
		Preset{
			Name: "calendly", Docs: "https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures",
			SignatureHeader: "Calendly-Webhook-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v1"), Signed: "{timestamp}.{body}",
		},
		Preset{
			Name: "calcom", Docs: "https://cal.com/docs/developing/guides/automation/webhooks",
			SignatureHeader: "X-Cal-Signature-256", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "clickup", Docs: "https://developer.clickup.com/docs/webhooksignature",
			SignatureHeader: "X-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "dropbox", Docs: "https://www.dropbox.com/developers/reference/webhooks",
			SignatureHeader: "X-Dropbox-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "docusign", Docs: "https://developers.docusign.com/platform/webhooks/connect/hmac/",
			SignatureHeader: "X-DocuSign-Signature-1", Algorithm: "sha256", Encoding: "base64",
			Notes: "Configure the Connect HMAC key whose signature arrives as X-DocuSign-Signature-1.",
		},
		// Identity.
		Preset{
			Name: "logto", Docs: "https://docs.logto.io/developers/webhooks/secure-webhooks",
			SignatureHeader: "logto-signature-sha-256", Algorithm: "sha256", Encoding: "hex",
		},
		// Payments and commerce.
		Preset{
			Name: "razorpay", Docs: "https://razorpay.com/docs/webhooks/validate-test/",
			IDHeader: "X-Razorpay-Event-Id", SignatureHeader: "X-Razorpay-Signature",
			Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "paystack", Docs: "https://paystack.com/docs/payments/webhooks/#verify-event-origin",
			SignatureHeader: "x-paystack-signature", Algorithm: "sha512", Encoding: "hex",
		},
		Preset{
			Name: "lemonsqueezy", Docs: "https://docs.lemonsqueezy.com/help/webhooks/signing-requests",
			SignatureHeader: "X-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "coinbase_commerce", Docs: "https://docs.cdp.coinbase.com/commerce-onchain/docs/webhooks-security",
			SignatureHeader: "X-CC-Webhook-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "woocommerce", Docs: "https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks",
			IDHeader: "X-WC-Webhook-Delivery-ID", SignatureHeader: "X-WC-Webhook-Signature",
			Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "patreon", Docs: "https://docs.patreon.com/#webhooks",
			SignatureHeader: "X-Patreon-Signature", Algorithm: "md5", Encoding: "hex",
		},
		// Accounting.
		Preset{
			Name: "xero", Docs: "https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/",
			SignatureHeader: "x-xero-signature", Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "quickbooks", Docs: "https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks/managing-webhooks-notifications#validating-the-notification",
			SignatureHeader: "intuit-signature", Algorithm: "sha256", Encoding: "base64",
		},
		// Messaging and social.
		Preset{
			Name: "meta", Docs: "https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads",
			SignatureHeader: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			Notes: "The secret is the app secret. Also for Messenger, Instagram and WhatsApp.",
		},
		Preset{
			Name: "whatsapp", Docs: "https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads",
			SignatureHeader: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			Notes: "WhatsApp Cloud API webhooks are Meta webhooks; the secret is the app secret.",
		},
		Preset{
			Name: "instagram", Docs: "https://developers.facebook.com/docs/instagram-platform/webhooks#validate-payloads",
			SignatureHeader: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			Notes: "Instagram webhooks are Meta webhooks; the secret is the app secret.",
		},
		Preset{
			Name: "line", Docs: "https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature/",
			SignatureHeader: "x-line-signature", Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "pusher", Docs: "https://pusher.com/docs/channels/server_api/webhooks/#authentication",
			SignatureHeader: "X-Pusher-Signature", Algorithm: "sha256", Encoding: "hex",
			Notes: "The secret is the app secret of the key in X-Pusher-Key.",
		},
		// Customer data and messaging platforms.
		Preset{
			Name: "segment", Docs: "https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-webhook",
			SignatureHeader: "X-Signature", Algorithm: "sha1", Encoding: "hex",
		},
		Preset{
			Name: "customerio", Docs: "https://docs.customer.io/api/webhooks/",
			SignatureHeader: "X-CIO-Signature", Algorithm: "sha256", Encoding: "hex",
			TimestampHeader: "X-CIO-Timestamp", Signed: "v0:{timestamp}:{body}",
		},
		// Standard Webhooks and Svix senders.
		standardSender("openai", "https://platform.openai.com/docs/guides/webhooks", ""),
		standardSender("replicate", "https://replicate.com/docs/topics/webhooks/verify-webhook", ""),
		standardSender("clerk", "https://clerk.com/docs/webhooks/sync-data", "Clerk delivers through Svix (svix-* headers)."),
		standardSender("resend", "https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests", "Resend delivers through Svix (svix-* headers)."),
		standardSender("gitlab_signed", "https://gitlab.com/gitlab-org/gitlab/-/merge_requests/230944",
			"GitLab's signing token (whsec_ plus base64), distinct from the X-Gitlab-Token secret token of the gitlab preset."),
		// Identity and developer platforms.
		Preset{
			Name: "workos", Docs: "https://workos.com/docs/events/data-syncing/webhooks",
			SignatureHeader: "WorkOS-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v1"), TimestampFormat: "unix_ms", Signed: "{timestamp}.{body}",
			Notes: "Timestamps are in milliseconds.",
		},
		Preset{
			Name: "okta", Docs: "https://developer.okta.com/docs/concepts/event-hooks/",
			SignatureHeader: "Authorization", Algorithm: "token",
			Notes: "Event hooks: the secret is the authorization header value configured on the hook.",
		},
		Preset{
			Name: "auth0", Docs: "https://auth0.com/docs/customize/log-streams/custom-log-streams",
			SignatureHeader: "Authorization", Algorithm: "token",
			Notes: "Custom webhook log streams: the secret is the configured authorization token, as sent.",
		},
		Preset{
			Name: "notion", Docs: "https://developers.notion.com/reference/webhooks",
			SignatureHeader: "X-Notion-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			Notes: "The secret is the subscription's verification_token.",
		},
		Preset{
			Name: "airtable", Docs: "https://airtable.com/developers/web/api/webhooks-overview",
			SignatureHeader: "X-Airtable-Content-MAC", Algorithm: "sha256", Encoding: "hex", Prefix: "hmac-sha256=",
			Secret: decodeBase64Secret,
			Notes:  "The secret is the webhook's macSecretBase64, as returned (base64).",
		},
		Preset{
			Name: "asana", Docs: "https://developers.asana.com/docs/webhooks-guide",
			SignatureHeader: "X-Hook-Signature", Algorithm: "sha256", Encoding: "hex",
			Notes: "The secret is the X-Hook-Secret of the handshake.",
		},
		Preset{
			Name: "webflow", Docs: "https://developers.webflow.com/data/docs/working-with-webhooks",
			SignatureHeader: "x-webflow-signature", Algorithm: "sha256", Encoding: "hex",
			TimestampHeader: "x-webflow-timestamp", TimestampFormat: "unix_ms", Signed: "{timestamp}:{body}",
			Notes: "Timestamps are in milliseconds.",
		},
		Preset{
			Name: "mux", Docs: "https://docs.mux.com/guides/system/verify-webhook-signatures",
			SignatureHeader: "Mux-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v1"), Signed: "{timestamp}.{body}",
		},
		Preset{
			Name: "alchemy", Docs: "https://www.alchemy.com/docs/reference/notify-api-quickstart",
			SignatureHeader: "X-Alchemy-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		// Finance.
		Preset{
			Name: "gocardless", Docs: "https://developer.gocardless.com/getting-started/staying-up-to-date-with-webhooks",
			SignatureHeader: "Webhook-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "onfido", Docs: "https://documentation.onfido.com/api/latest/#webhooks",
			SignatureHeader: "X-SHA2-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		// Content and communication.
		Preset{
			Name: "sanity", Docs: "https://github.com/sanity-io/webhook-toolkit#readme",
			SignatureHeader: "sanity-webhook-signature", Algorithm: "sha256", Encoding: "base64url",
			Parse: parseKeyValueList(",", "t", "v1"), TimestampFormat: "unix_ms", Signed: "{timestamp}.{body}",
			Notes: "Timestamps are in milliseconds.",
		},
		Preset{
			Name: "front", Docs: "https://dev.frontapp.com/docs/application-webhooks",
			SignatureHeader: "X-Front-Signature", Algorithm: "sha256", Encoding: "base64",
			TimestampHeader: "X-Front-Request-Timestamp", TimestampFormat: "unix_ms", Signed: "{timestamp}:{body}",
			Notes: "Application webhooks, signed with the app's signing key; rule webhooks are front_rule. Timestamps are in milliseconds.",
		},
		Preset{
			Name: "front_rule", Docs: "https://dev.frontapp.com/docs/rule-webhooks",
			SignatureHeader: "X-Front-Signature", Algorithm: "sha1", Encoding: "base64",
			Notes: "Rule webhooks, signed with the company API secret.",
		},
		// Billing.
		Preset{
			Name: "recurly", Docs: "https://docs.recurly.com/recurly-subscriptions/docs/signature-verification",
			SignatureHeader: "recurly-signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseStampThenSignatures, TimestampFormat: "unix_ms", Signed: "{timestamp}.{body}",
			Notes: "The header is a millisecond timestamp followed by comma-separated signatures.",
		},
		Preset{
			Name: "revolut", Docs: "https://developer.revolut.com/docs/guides/accept-payments/tutorials/work-with-webhooks/verify-the-payload-signature",
			SignatureHeader: "Revolut-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse:           parsePrefixedList(",", "v1="),
			TimestampHeader: "Revolut-Request-Timestamp", TimestampFormat: "unix_ms", Signed: "v1.{timestamp}.{body}",
			Notes: "Timestamps are in milliseconds.",
		},
		// More code, CI and developer tools.
		Preset{
			Name: "jira", Docs: "https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks",
			IDHeader: "X-Atlassian-Webhook-Identifier", SignatureHeader: "X-Hub-Signature",
			Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			Notes: "Admin webhooks registered with a secret; app (Connect, OAuth) webhooks are not signed this way.",
		},
		Preset{
			Name: "snyk", Docs: "https://docs.snyk.io/snyk-api/how-to-use-snyk-webhooks-to-integrate-with-external-tools",
			SignatureHeader: "X-Hub-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
		},
		Preset{
			Name: "discourse", Docs: "https://meta.discourse.org/t/configure-webhooks-that-trigger-on-discourse-events-to-integrate-with-external-services/49045",
			IDHeader: "X-Discourse-Event-Id", SignatureHeader: "X-Discourse-Event-Signature",
			Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
		},
		Preset{
			Name: "hookdeck", Docs: "https://hookdeck.com/docs/authentication",
			SignatureHeader: "x-hookdeck-signature", Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "cloudflare", Docs: "https://developers.cloudflare.com/notifications/get-started/configure-webhooks/",
			SignatureHeader: "cf-webhook-auth", Algorithm: "token",
			Notes: "Notifications webhooks send the configured secret as is.",
		},
		Preset{
			Name: "elevenlabs", Docs: "https://elevenlabs.io/docs/product-guides/administration/webhooks",
			SignatureHeader: "ElevenLabs-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v0"), Signed: "{timestamp}.{body}",
		},
		// More content, forms and CRM.
		Preset{
			Name: "frameio", Docs: "https://developer.frame.io/docs/automations-webhooks/webhooks-overview",
			SignatureHeader: "X-Frameio-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "v0=",
			TimestampHeader: "X-Frameio-Request-Timestamp", Signed: "v0:{timestamp}:{body}",
		},
		Preset{
			Name: "storyblok", Docs: "https://www.storyblok.com/docs/guide/in-depth/webhooks",
			SignatureHeader: "webhook-signature", Algorithm: "sha1", Encoding: "hex",
		},
		Preset{
			Name: "tally", Docs: "https://tally.so/help/webhooks",
			SignatureHeader: "Tally-Signature", Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "attio", Docs: "https://docs.attio.com/rest-api/guides/webhooks",
			IDHeader: "Idempotency-Key", SignatureHeader: "Attio-Signature",
			Aliases:   map[string]string{"attio-signature": "X-Attio-Signature"},
			Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "persona", Docs: "https://docs.withpersona.com/v2022-09-01/docs/best-practices#checking-signatures",
			SignatureHeader: "Persona-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseSpacedKeyValueGroups, Signed: "{timestamp}.{body}",
			Notes: "During secret rotation the header holds space-separated t=,v1= groups; their timestamps must agree.",
		},
		// More payments, billing and logistics.
		Preset{
			Name: "flutterwave", Docs: "https://developer.flutterwave.com/docs/webhooks",
			SignatureHeader: "verif-hash", Algorithm: "token",
			Notes: "The secret hash set on the dashboard, sent as is.",
		},
		Preset{
			Name: "checkout_com", Docs: "https://www.checkout.com/docs/developer-resources/webhooks/manage-webhooks",
			SignatureHeader: "Cko-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "maxio", Docs: "https://docs.maxio.com/hc/en-us/articles/24266136649869-Webhooks-Reference",
			IDHeader: "X-Chargify-Webhook-Id", SignatureHeader: "X-Chargify-Webhook-Signature-Hmac-Sha-256",
			Algorithm: "sha256", Encoding: "hex",
			Notes: "Maxio Advanced Billing (Chargify); the secret is the site shared key.",
		},
		Preset{
			Name: "easypost", Docs: "https://docs.easypost.com/guides/webhooks-guide#hmac-validation",
			SignatureHeader: "X-Hmac-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "hmac-sha256-hex=",
			Secret: nfkdSecret,
			Notes:  "The secret is NFKD-normalized before use, as EasyPost does.",
		},
		Preset{
			Name: "fourthwall", Docs: "https://docs.fourthwall.com/webhooks/signature-verification",
			SignatureHeader: "X-Fourthwall-Hmac-SHA256", Algorithm: "sha256", Encoding: "base64",
			Notes: "Shop webhooks; platform apps sign into X-Fourthwall-Hmac-Apps-SHA256 (use the hmac method with that header).",
		},
	)
}

// standardSender is a provider that signs as Standard Webhooks (or Svix,
// whose headers standardPreset also reads), with its own documentation.
func standardSender(name, docs, notes string) Preset {
	p := standardPreset(name)
	p.Docs, p.Notes = docs, notes
	return p
}

// decodeBase64Secret decodes a secret handed out base64-encoded.
func decodeBase64Secret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil || len(key) == 0 {
		return nil, errors.New("must be base64")
	}
	return key, nil
}

// parseStampThenSignatures parses "<timestamp>,<sig>,<sig>..." (Recurly).
func parseStampThenSignatures(v string) (string, []string, bool) {
	ts, rest, ok := strings.Cut(v, ",")
	if !ok {
		return "", nil, false
	}
	var sigs []string
	for item := range strings.SplitSeq(rest, ",") {
		if len(sigs) == 4*maxCandidates {
			return "", nil, false
		}
		sigs = append(sigs, strings.TrimSpace(item))
	}
	return strings.TrimSpace(ts), sigs, true
}

// parseSpacedKeyValueGroups parses "t=1,v1=a t=1,v1=b" (Persona while a
// secret rotates): space-separated Stripe-style groups sharing one
// timestamp.
func parseSpacedKeyValueGroups(v string) (string, []string, bool) {
	group := parseKeyValueList(",", "t", "v1")
	var ts string
	var sigs []string
	groups := 0
	for g := range strings.FieldsSeq(v) {
		if groups++; groups > maxCandidates {
			return "", nil, false
		}
		t, s, ok := group(g)
		if !ok || (ts != "" && t != ts) {
			return "", nil, false
		}
		ts = t
		sigs = append(sigs, s...)
	}
	return ts, sigs, ts != ""
}

// nfkdSecret applies the Unicode NFKD normalization EasyPost applies to
// webhook secrets.
func nfkdSecret(secret string) ([]byte, error) {
	return []byte(norm.NFKD.String(secret)), nil
}
