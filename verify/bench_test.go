package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v84/webhook"

	"github.com/caddy-webhooks/gateway/verify"
)

// BenchmarkVerify measures presets over 1 KiB and 1 MiB bodies, next to raw
// HMAC-SHA256 over the same bytes: the physical floor.
func BenchmarkVerify(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		body := []byte(`{"pad":"` + strings.Repeat("x", size-10) + `"}`)
		label := "1KiB"
		if size == 1<<20 {
			label = "1MiB"
		}
		b.Run("RawHMACSHA256/"+label, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				m := hmac.New(sha256.New, []byte("secret"))
				m.Write(body)
				_ = m.Sum(nil)
			}
		})
		now := time.Now()
		std := presetCases[5]
		cases := map[string]struct {
			spec verify.Spec
			h    http.Header
		}{
			"github": {
				verify.Spec{Method: "github", Secrets: []string{"secret"}},
				http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac(sha256.New, []byte("secret"), string(body)))}},
			},
			"stripe": {
				verify.Spec{Method: "stripe", Secrets: []string{"whsec_x"}},
				http.Header{"Stripe-Signature": {webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_x", Timestamp: now}).Header}},
			},
			"standard": {verify.Spec{Method: "standard", Secrets: []string{std.secret}}, std.sign(std.secret, now, body)},
			"github+reject_duplicate_keys": {
				verify.Spec{Method: "github", Secrets: []string{"secret"}, RejectDuplicateKeys: true},
				http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac(sha256.New, []byte("secret"), string(body)))}},
			},
		}
		for name, c := range cases {
			v, err := verify.New(c.spec)
			if err != nil {
				b.Fatal(err)
			}
			r := newRequest(c.h, body)
			if err := v.Verify(r, body); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			b.Run(name+"/"+label, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if err := v.Verify(r, body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
