package verify

import (
	"strings"
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
			Name: "calcom", Docs: "https://github.com/calcom/cal.com/blob/main/packages/features/webhooks/lib/sendPayload.ts",
			SignatureHeader: "X-Cal-Signature-256", Algorithm: "sha256", Encoding: "hex",
			Notes: "Cal.com sends no-secret-provided instead of a signature when the webhook has no secret; such requests are rejected.",
		},
		Preset{
			Name: "clickup", Docs: "https://developer.clickup.com/docs/webhooksignature",
			SignatureHeader: "X-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		// Identity.
		Preset{
			Name: "logto", Docs: "https://docs.logto.io/developers/webhooks/secure-webhooks",
			SignatureHeader: "logto-signature-sha-256", Algorithm: "sha256", Encoding: "hex",
		},
		// Payments and commerce.
		Preset{
			Name: "razorpay", Docs: "https://github.com/razorpay/razorpay-node/blob/master/lib/utils/razorpay-utils.js",
			SignatureHeader: "X-Razorpay-Signature",
			Algorithm:       "sha256", Encoding: "hex",
		},
		Preset{
			Name: "paystack", Docs: "https://github.com/PaystackOSS/doc-code-snippets/blob/main/src/doc/payments/webhooks/verifying-transaction/index.js",
			SignatureHeader: "x-paystack-signature", Algorithm: "sha512", Encoding: "hex",
		},
		Preset{
			Name: "coinbase_commerce", Docs: "https://docs.cdp.coinbase.com/commerce/api-arcitecture/webhooks-security",
			SignatureHeader: "X-CC-Webhook-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		Preset{
			Name: "woocommerce", Docs: "https://github.com/woocommerce/woocommerce/blob/trunk/plugins/woocommerce/includes/class-wc-webhook.php",
			IDHeader: "X-WC-Webhook-Delivery-ID", SignatureHeader: "X-WC-Webhook-Signature",
			Algorithm: "sha256", Encoding: "base64",
			Notes: "The secret as shown in WooCommerce (HTML entities decoded). The creation ping (webhook_id=<id>) is not signed.",
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
			Name: "line", Docs: "https://github.com/line/line-bot-sdk-go/blob/master/linebot/webhook/parse.go",
			SignatureHeader: "x-line-signature", Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "pusher", Docs: "https://github.com/pusher/pusher-http-go/blob/master/webhook_test.go",
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
		standardSender("openai", "https://github.com/openai/openai-python/blob/main/src/openai/resources/webhooks.py", "The secret is the whsec_ signing secret."),
		standardSender("replicate", "https://replicate.com/docs/topics/webhooks/verify-webhook", ""),
		standardSender("clerk", "https://github.com/clerk/javascript/blob/main/packages/backend/src/webhooks.ts", "Clerk delivers through Svix (svix-* headers); the secret is the whsec_ signing secret."),
		standardSender("resend", "https://resend.com/docs/webhooks/verify-webhooks-requests", "Resend delivers through Svix (svix-* headers); the secret is the whsec_ signing secret."),
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
			Name: "okta", Docs: "https://developer.okta.com/docs/guides/hooks-best-practices/",
			SignatureHeader: "Authorization", Algorithm: "token",
			Notes: "Event hooks with the Authentication field set to Authorization; the secret is the Authentication secret, scheme included (e.g. Basic <base64>).",
		},
		Preset{
			Name: "webflow", Docs: "https://developers.webflow.com/data/docs/working-with-webhooks",
			SignatureHeader: "x-webflow-signature", Algorithm: "sha256", Encoding: "hex",
			TimestampHeader: "x-webflow-timestamp", TimestampFormat: "unix_ms", Signed: "{timestamp}:{body}",
			Notes: "Timestamps are in milliseconds.",
		},
		Preset{
			Name: "mux", Docs: "https://www.mux.com/docs/core/verify-webhook-signatures",
			SignatureHeader: "Mux-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v1"), Signed: "{timestamp}.{body}",
		},
		Preset{
			Name: "alchemy", Docs: "https://github.com/alchemyplatform/webhook-examples/blob/main/node-express/src/webhooksUtil.ts",
			SignatureHeader: "X-Alchemy-Signature", Algorithm: "sha256", Encoding: "hex",
		},
		// Finance.
		Preset{
			Name: "onfido", Docs: "https://documentation.identity.entrust.com/api/manual-webhook-signature-verification/",
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
			Name: "snyk", Docs: "https://docs.snyk.io/snyk-api/snyk-webhooks/validation-and-versioning-of-payloads",
			SignatureHeader: "X-Hub-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
		},
		Preset{
			Name: "discourse", Docs: "https://github.com/discourse/discourse/blob/main/spec/jobs/emit_web_hook_event_spec.rb",
			IDHeader: "X-Discourse-Event-Id", SignatureHeader: "X-Discourse-Event-Signature",
			Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
		},
		Preset{
			Name: "hookdeck", Docs: "https://github.com/hookdeck/webhook-skills/blob/main/skills/hookdeck-event-gateway-webhooks/SKILL.md",
			SignatureHeader: "x-hookdeck-signature", Algorithm: "sha256", Encoding: "base64",
		},
		Preset{
			Name: "cloudflare", Docs: "https://developers.cloudflare.com/notifications/get-started/configure-webhooks/#generic-webhooks",
			SignatureHeader: "cf-webhook-auth", Algorithm: "token",
			Notes: "Notifications webhooks send the configured secret as is.",
		},
		Preset{
			Name: "elevenlabs", Docs: "https://elevenlabs.io/docs/product-guides/administration/webhooks#authentication",
			SignatureHeader: "ElevenLabs-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseKeyValueList(",", "t", "v0"), Signed: "{timestamp}.{body}",
			Notes: "ElevenLabs' own examples accept timestamps up to 30 minutes old; set tolerance 30m to match.",
		},
		// More content, forms and CRM.
		Preset{
			Name: "persona", Docs: "https://docs.withpersona.com/v2022-09-01/docs/best-practices#checking-signatures",
			SignatureHeader: "Persona-Signature", Algorithm: "sha256", Encoding: "hex",
			Parse: parseSpacedKeyValueGroups, Signed: "{timestamp}.{body}",
			Notes: "During secret rotation the header holds space-separated t=,v1= groups; their timestamps must agree.",
		},
		// More payments, billing and logistics.
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
