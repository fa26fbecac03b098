package verify_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/caddy-webhooks/gateway/verify"
)

// FuzzPresetHeaders feeds arbitrary signature, timestamp and other header
// values and bodies to every preset's verifier, each built with its test
// case's secret. Nothing may panic, and nothing may be accepted: the
// seeds are real requests signed with another secret, so an acceptance
// is a forgery. And the other way round, so that "reject everything" does
// not pass: the fuzzed body, signed with the right secret by the case's
// signer (written in the tests from the provider's documentation), is
// accepted by every preset that signs an arbitrary body.
func FuzzPresetHeaders(f *testing.F) {
	cases := map[string]presetCase{}
	for _, tc := range append(presetCases[:len(presetCases):len(presetCases)], extraCases...) {
		cases[tc.name] = tc
	}
	type target struct {
		name   string
		p      verify.Preset
		v      verify.Verifier
		secret string
		tc     presetCase
	}
	var targets []target
	for _, name := range verify.Presets() {
		tc, ok := cases[name]
		if !ok {
			tc = cases["standard"] // svix shares its secrets
		}
		p, _ := verify.Lookup(name)
		v, err := verify.New(verify.Spec{Method: name, Secrets: []string{tc.secret}, Now: clock})
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		targets = append(targets, target{name, p, v, tc.secret, tc})

		// a seed per case: its request as signed with the wrong secret
		body := trapBody
		if tc.body != nil {
			body = append([]byte(nil), tc.body...)
		}
		h := tc.sign(tc.other, fixedNow, body)
		f.Add(h.Get(p.SignatureHeader), h.Get(p.TimestampHeader), h.Get("Content-Type")+h.Get(p.IDHeader), body)
	}
	f.Add("", "", "", []byte(nil))
	f.Add("t=1795400000,v1="+strings.Repeat("0", 64), "1795400000", "application/json", []byte(`{"signature":{"timestamp":"1795400000","token":"t","signature":"00"}}`))
	f.Add("Bearer e30.e30.", "2026-11-22T10:00:00Z", "application/x-www-form-urlencoded", []byte("a=1&a=2&b=%zz"))
	f.Add("sha256=%3A%", "99999999999999999999", "multipart/form-data; boundary=x", []byte(`{"notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"x"}}}]}`))

	f.Fuzz(func(t *testing.T, sig, ts, other string, body []byte) {
		for _, tg := range targets {
			h := http.Header{}
			set := func(name, value string) {
				if name != "" && value != "" {
					h.Set(name, value)
				}
			}
			for _, name := range []string{"Content-Type", "Box-Signature-Version", "Box-Signature-Algorithm", "Box-Signature-Secondary", "Webhook-Id", "Svix-Id"} {
				set(name, other)
			}
			set(tg.p.IDHeader, other)
			for _, alias := range tg.p.Aliases {
				set(alias, sig)
			}
			set(tg.p.TimestampHeader, ts)
			set(tg.p.SignatureHeader, sig)
			err := tg.v.Verify(newRequest(h, body), body)
			if err == nil {
				t.Fatalf("%s accepted a request not signed with its secret: headers %q, body %q", tg.name, h, body)
			}
			if strings.Contains(err.Error(), tg.secret) {
				t.Fatalf("%s: error carries the secret: %v", tg.name, err)
			}
		}
		for _, tg := range targets {
			if tg.tc.body != nil {
				continue // the signature lives in, or is built from, a structured body (twilio, mailgun, adyen)
			}
			if tg.name == "trello" && trelloRefusesByDesign(body) {
				continue
			}
			r := newRequest(tg.tc.sign(tg.tc.secret, fixedNow, body), body)
			if tg.tc.setup != nil {
				tg.tc.setup(r)
			}
			if err := tg.v.Verify(r, body); err != nil {
				t.Fatalf("%s refused a body signed with its secret: %v (body %q)", tg.name, err, body)
			}
		}
	})
}

// trelloRefusesByDesign: Trello signs a lossy form of the body (each
// UTF-16 unit's low byte). The verifier does not accept that form for
// invalid UTF-8 (Trello never sends it) nor where a character outside
// Latin-1 turns into '"' or '\\', since the signed bytes then read as
// another JSON document (the U+0122 forgery).
func trelloRefusesByDesign(body []byte) bool {
	if !utf8.Valid(body) {
		return true
	}
	for _, r := range string(body) {
		if r > 0xFF {
			for _, unit := range utf16.Encode([]rune{r}) {
				if b := byte(unit); b == '"' || b == '\\' {
					return true
				}
			}
		}
	}
	return false
}
