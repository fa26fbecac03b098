package verify_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/verify"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/providers.md from the preset registry")

// oracles names, per preset, what its tests check it against besides the
// signer written from the provider's documentation in the case table.
var oracles = map[string]string{
	"github":   "SDK: go-github `ValidatePayload`",
	"stripe":   "SDK: stripe-go `webhook.ConstructEvent`",
	"standard": "SDK: Standard Webhooks Go library and svix-webhooks",
	"svix":     "SDK: svix-webhooks and the Standard Webhooks Go library",
	"slack":    "SDK: slack-go `SecretsVerifier`",
	"paddle":   "SDK: paddle-go-sdk `WebhookVerifier`",
}

// TestProvidersDoc keeps docs/providers.md equal to the registry: run
// `go test ./verify -run TestProvidersDoc -update` after adding a preset.
func TestProvidersDoc(t *testing.T) {
	cases := map[string]presetCase{}
	for _, tc := range append(presetCases[:len(presetCases):len(presetCases)], extraCases...) {
		cases[tc.name] = tc
	}
	var b bytes.Buffer
	names := verify.Presets()
	sdk, vectors := 0, 0
	for _, name := range names {
		o := oracleOf(name, cases)
		switch {
		case strings.HasPrefix(o, "SDK"):
			sdk++
		case strings.HasPrefix(o, "vectors"):
			vectors++
		}
	}
	fmt.Fprintf(&b, "# Provider presets\n\n")
	fmt.Fprintf(&b, "Generated from the registry in `verify/` by `go test ./verify -run TestProvidersDoc -update`; do not edit by hand.\n\n")
	fmt.Fprintf(&b, "`auth <preset> <secret...>` verifies a provider's signature over the exact bytes received. ")
	fmt.Fprintf(&b, "Timestamped schemes accept a clock skew of `tolerance` (default 5m) in both directions. ")
	fmt.Fprintf(&b, "The id header feeds `{http.webhook_gateway.id}` and `deduplicate`.\n\n")
	fmt.Fprintf(&b, "%d presets: %d checked against the provider's own SDK, %d against published test vectors, %d against the documented algorithm implemented independently in the tests.\n\n",
		len(names), sdk, vectors, len(names)-sdk-vectors)
	fmt.Fprintf(&b, "| preset | signature header | algorithm | signed content | encoding | timestamp | id header | checked against | source |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range names {
		p, _ := verify.Lookup(name)
		alg := p.Algorithm
		switch alg {
		case "token":
			alg = "shared token (constant-time compare)"
		case "ed25519":
			alg = "Ed25519 public key"
		case "ecdsa-p256":
			alg = "ECDSA P-256 public key"
		default:
			alg = "HMAC-" + strings.ToUpper(alg)
		}
		signed := p.Signed
		if signed == "" && p.Algorithm != "token" {
			signed = "{body}"
		}
		enc := p.Encoding
		if p.Prefix != "" {
			enc += " after `" + p.Prefix + "`"
		}
		ts := "—"
		switch {
		case p.TimestampHeader != "":
			ts = "`" + p.TimestampHeader + "`"
		case strings.Contains(p.Signed, "{timestamp}"):
			ts = "in the signature header"
		}
		header := "`" + p.SignatureHeader + "`"
		for _, alias := range sortedValues(p.Aliases) {
			if strings.EqualFold(p.SignatureHeader, alias.k) {
				header += " or `" + alias.v + "`"
			}
		}
		notes := ""
		if p.Notes != "" {
			notes = " " + p.Notes
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s | [docs](%s)%s |\n",
			name, header, alg, code(signed), orDash(enc), ts, orDash(code(p.IDHeader)), oracleOf(name, cases), p.Docs, notes)
	}
	const path = "../docs/providers.md"
	if *updateDocs {
		if err := os.MkdirAll("../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("docs/providers.md is not up to date (%v): run go test ./verify -run TestProvidersDoc -update", err)
	}
}

func oracleOf(name string, cases map[string]presetCase) string {
	if o, ok := oracles[name]; ok {
		return o
	}
	if o := cases[name].oracle; o != "" {
		return o
	}
	return "documented algorithm"
}

type kv struct{ k, v string }

func sortedValues(m map[string]string) []kv {
	var out []kv
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].k < out[i].k {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
