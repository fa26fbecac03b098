package verify_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/verify"
)

// The signers in this file are written from each provider's documentation,
// independently of the verify package, so a test here can fail when the
// package is wrong.

var fixedNow = time.Unix(1795400000, 0)

func clock() time.Time { return fixedNow }

func mac(newHash func() hash.Hash, key []byte, parts ...string) []byte {
	m := hmac.New(newHash, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func newRequest(header http.Header, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://hooks.example.com/in?x=1", strings.NewReader(string(body)))
	for k, v := range header {
		r.Header[k] = v
	}
	return r
}

func mustNew(t *testing.T, s verify.Spec) verify.Verifier {
	t.Helper()
	if s.Now == nil {
		s.Now = clock
	}
	v, err := verify.New(s)
	if err != nil {
		t.Fatalf("New(%s): %v", s.Method, err)
	}
	return v
}

// presetCase signs a request as one provider documents it.
type presetCase struct {
	name    string
	secret  string // what the user configures
	other   string // another valid secret, to sign with the wrong one
	stamped bool   // a timestamp is signed and checked
	list    bool   // the signature header is a list: text around a valid entry is ignored
	idHdr   string
	sign    func(secret string, ts time.Time, body []byte) http.Header

	// Optional, for schemes that differ:
	listHdr string                // canonical name of the list header, when list is set
	noBody  bool                  // the body is not signed (a token)
	body    []byte                // the request body, default trapBody
	tamper  func(b []byte) []byte // changes one signed byte of body; default edits trapBody
	setup   func(r *http.Request) // shapes the request (content type, URL) before verifying
	// oracle says what besides the signer written here from the documentation
	// the preset is checked against: "SDK: <library> <function>" for a test
	// calling the provider's SDK, "vectors: <where>" for published test
	// vectors; shown in docs/providers.md.
	oracle string
}

// extraCases are the cases of the other preset test files, added from
// their init functions.
var extraCases []presetCase

// sigHeader is the header of the case that carries the signature list.
func (tc presetCase) sigHeader() string {
	if tc.listHdr != "" {
		return tc.listHdr
	}
	return map[string]string{"stripe": "Stripe-Signature", "standard": "Webhook-Signature", "pagerduty": "X-Pagerduty-Signature"}[tc.name]
}

func unix(ts time.Time) string { return strconv.FormatInt(ts.Unix(), 10) }

// Key pairs are derived from fixed labels, not generated: a fuzz corpus
// entry or a failure signed with one reproduces in the next run.
var discordKey1, discordKey2 = fixedEd25519("discord 1"), fixedEd25519("discord 2")

func fixedEd25519(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("verify test key: " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubHex(k ed25519.PrivateKey) string { return hex.EncodeToString(k.Public().(ed25519.PublicKey)) }

var presetCases = []presetCase{
	{
		name: "github", secret: "gh-secret", other: "gh-other", idHdr: "X-GitHub-Delivery",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac(sha256.New, []byte(s), string(b)))}}
		},
	},
	{
		name: "gitlab", secret: "gl-token", other: "gl-other", idHdr: "X-Gitlab-Event-UUID", noBody: true,
		sign: func(s string, _ time.Time, _ []byte) http.Header { return http.Header{"X-Gitlab-Token": {s}} },
	},
	{
		name: "shopify", secret: "shpss_secret", other: "shpss_other", idHdr: "X-Shopify-Webhook-Id",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"X-Shopify-Hmac-Sha256": {base64.StdEncoding.EncodeToString(mac(sha256.New, []byte(s), string(b)))}}
		},
	},
	{
		name: "slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", other: "slack-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{
				"X-Slack-Request-Timestamp": {unix(ts)},
				"X-Slack-Signature":         {"v0=" + hex.EncodeToString(mac(sha256.New, []byte(s), "v0:", unix(ts), ":", string(b)))},
			}
		},
	},
	{
		name: "stripe", list: true, secret: "whsec_stripe", other: "whsec_other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Stripe-Signature": {"t=" + unix(ts) + ",v1=" + hex.EncodeToString(mac(sha256.New, []byte(s), unix(ts), ".", string(b))) + ",v0=deadbeef"}}
		},
	},
	{
		name: "standard", list: true, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", other: "whsec_" + base64.StdEncoding.EncodeToString([]byte("another key of 24 bytes!")),
		stamped: true, idHdr: "webhook-id",
		sign: func(s string, ts time.Time, b []byte) http.Header {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
			sig := base64.StdEncoding.EncodeToString(mac(sha256.New, key, "msg_2KWPBgLlAfxdpx2AI54pPJ85f1W", ".", unix(ts), ".", string(b)))
			return http.Header{
				"Webhook-Id":        {"msg_2KWPBgLlAfxdpx2AI54pPJ85f1W"},
				"Webhook-Timestamp": {unix(ts)},
				"Webhook-Signature": {"v1a,ignored v1," + sig},
			}
		},
	},
	{
		name: "paddle", secret: "pdl_ntfset_secret", other: "pdl_other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{"Paddle-Signature": {"ts=" + unix(ts) + ";h1=" + hex.EncodeToString(mac(sha256.New, []byte(s), unix(ts), ":", string(b)))}}
		},
	},
	{
		name: "linear", secret: "lin_wh_secret", other: "lin_other", idHdr: "Linear-Delivery",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"Linear-Signature": {hex.EncodeToString(mac(sha256.New, []byte(s), string(b)))}}
		},
	},
	{
		name: "pagerduty", list: true, secret: "pd-secret", other: "pd-other", idHdr: "X-Webhook-Id",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			good := hex.EncodeToString(mac(sha256.New, []byte(s), string(b)))
			return http.Header{"X-Pagerduty-Signature": {"v1=" + strings.Repeat("0", 64) + ",v1=" + good}}
		},
	},
	{
		name: "typeform", secret: "tf-secret", other: "tf-other",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"Typeform-Signature": {"sha256=" + base64.StdEncoding.EncodeToString(mac(sha256.New, []byte(s), string(b)))}}
		},
	},
	{
		name: "intercom", secret: "ic-client-secret", other: "ic-other",
		sign: func(s string, _ time.Time, b []byte) http.Header {
			return http.Header{"X-Hub-Signature": {"sha1=" + hex.EncodeToString(mac(sha1.New, []byte(s), string(b)))}}
		},
	},
	{
		name: "zoom", secret: "zoom-secret-token", other: "zoom-other", stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			return http.Header{
				"X-Zm-Request-Timestamp": {unix(ts)},
				"X-Zm-Signature":         {"v0=" + hex.EncodeToString(mac(sha256.New, []byte(s), "v0:", unix(ts), ":", string(b)))},
			}
		},
	},
	{
		name: "discord", secret: pubHex(discordKey1), other: pubHex(discordKey2), stamped: true,
		sign: func(s string, ts time.Time, b []byte) http.Header {
			key := discordKey1
			if s == pubHex(discordKey2) {
				key = discordKey2
			}
			sig := ed25519.Sign(key, append([]byte(unix(ts)), b...))
			return http.Header{"X-Signature-Ed25519": {hex.EncodeToString(sig)}, "X-Signature-Timestamp": {unix(ts)}}
		},
	},
}

// trapBody has characters JSON encoders escape differently; verification
// is over these exact bytes.
var trapBody = []byte(`{"text":"<b>&amp; caf\u00e9 ☕","slash":"a\/b","n":1.50,"big":12345678901234567890, "sp" : [ 1 , 2 ]}`)

func TestPresets(t *testing.T) {
	covered := map[string]bool{"svix": true} // svix: TestStandardWebhooksLibraries
	for _, tc := range append(presetCases[:len(presetCases):len(presetCases)], extraCases...) {
		if covered[tc.name] {
			t.Errorf("preset %s tested twice", tc.name)
		}
		covered[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			v := mustNew(t, verify.Spec{Method: tc.name, Secrets: []string{tc.secret}})
			if got := verify.IDHeader(tc.name); got != tc.idHdr {
				t.Errorf("IDHeader = %q, want %q", got, tc.idHdr)
			}
			trapBody := trapBody
			if tc.body != nil {
				trapBody = tc.body
			}
			request := func(h http.Header, body []byte) *http.Request {
				r := newRequest(h, body)
				if tc.setup != nil {
					tc.setup(r)
				}
				return r
			}
			check := func(name string, h http.Header, body []byte, want error) {
				t.Helper()
				err := v.Verify(request(h, body), body)
				if want == nil && err != nil {
					t.Errorf("%s: rejected: %v", name, err)
				}
				if want != nil && !errors.Is(err, want) {
					t.Errorf("%s: got %v, want %v", name, err, want)
				}
				if err != nil && (strings.Contains(err.Error(), tc.secret) || strings.Contains(err.Error(), "caf")) {
					t.Errorf("%s: error leaks a secret or the body: %v", name, err)
				}
			}
			check("valid", tc.sign(tc.secret, fixedNow, trapBody), trapBody, nil)
			tampered := []byte(strings.Replace(string(trapBody), "1.50", "1.5", 1))
			if tc.tamper != nil {
				tampered = tc.tamper(trapBody)
			}
			if !tc.noBody {
				check("tampered body", tc.sign(tc.secret, fixedNow, trapBody), tampered, verify.ErrMismatch)
			}
			check("wrong secret", tc.sign(tc.other, fixedNow, trapBody), trapBody, verify.ErrMismatch)
			check("missing headers", http.Header{}, trapBody, verify.ErrMissing)
			if tc.stamped {
				check("stale", tc.sign(tc.secret, fixedNow.Add(-6*time.Minute), trapBody), trapBody, verify.ErrTimestamp)
				check("future", tc.sign(tc.secret, fixedNow.Add(6*time.Minute), trapBody), trapBody, verify.ErrTimestamp)
				check("within tolerance", tc.sign(tc.secret, fixedNow.Add(-4*time.Minute), trapBody), trapBody, nil)
			}
			// every header value garbled, truncated or emptied: rejected, never a panic
			valid := tc.sign(tc.secret, fixedNow, trapBody)
			for name, vals := range valid {
				for _, mutate := range []func(string) string{
					func(s string) string { return s[:len(s)/2] },
					func(s string) string { return s + "x" },
					func(string) string { return "" },
					func(s string) string { return strings.Repeat(s+",", 200) },
					func(s string) string { return "\xff\xfe" + s },
				} {
					h := valid.Clone()
					h[name] = []string{mutate(vals[0])}
					if h.Get(name) == vals[0] {
						continue
					}
					err := v.Verify(request(h, trapBody), trapBody)
					// in a list, a valid entry with other text around it still passes
					kept := tc.list && name == tc.sigHeader() && strings.Contains(h.Get(name), vals[0])
					if err == nil && !kept {
						t.Errorf("header %s mutated to %.60q accepted", name, h.Get(name))
					}
				}
			}
		})
	}
	for _, name := range verify.Presets() {
		if !covered[name] {
			t.Errorf("preset %s has no test", name)
		}
	}
}

func TestSecretRotation(t *testing.T) {
	v := mustNew(t, verify.Spec{Method: "github", Secrets: []string{"old", "new"}})
	for _, s := range []string{"old", "new"} {
		h := presetCases[0].sign(s, fixedNow, trapBody)
		if err := v.Verify(newRequest(h, trapBody), trapBody); err != nil {
			t.Errorf("secret %s rejected: %v", s, err)
		}
	}
}

func TestHostileSignatureHeaders(t *testing.T) {
	v := mustNew(t, verify.Spec{Method: "stripe", Secrets: []string{"whsec_x"}})
	ts := unix(fixedNow)
	good := hex.EncodeToString(mac(sha256.New, []byte("whsec_x"), ts, ".", string(trapBody)))
	cases := map[string]string{
		"hundreds of v1 entries":  "t=" + ts + strings.Repeat(",v1="+strings.Repeat("a", 64), 300) + ",v1=" + good,
		"two timestamps":          "t=" + ts + ",t=" + ts + ",v1=" + good,
		"empty, then a timestamp": "t=,t=" + ts + ",v1=" + good,
		"overflowing timestamp":   "t=99999999999999999999999,v1=" + good,
		"negative timestamp":      "t=-1,v1=" + good,
		"non-numeric timestamp":   "t=now,v1=" + good,
		"no signature":            "t=" + ts,
		"wrong length":            "t=" + ts + ",v1=" + good[:62],
		"not hex":                 "t=" + ts + ",v1=" + strings.Repeat("z", 64),
		"huge header":             "t=" + ts + ",v1=" + good + "," + strings.Repeat("x", 20000),
	}
	for name, hv := range cases {
		err := v.Verify(newRequest(http.Header{"Stripe-Signature": {hv}}, trapBody), trapBody)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
