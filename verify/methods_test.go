package verify_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-webhooks/gateway/verify"
)

func basicHeader(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// argon2idHash formats a hash as `caddy hash-password --algorithm argon2id`
// does.
func argon2idHash(password string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(password), salt, 1, 8*1024, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, 8*1024, 1, 1,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func TestBasic(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("pa:ss word"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for kind, stored := range map[string]string{
		"plaintext": "pa:ss word",
		"bcrypt":    string(bc),
		"argon2id":  argon2idHash("pa:ss word"),
	} {
		t.Run(kind, func(t *testing.T) {
			v := mustNew(t, verify.Spec{Method: "basic", Username: "hooks", Password: stored})
			cases := []struct {
				name string
				h    http.Header
				want error
			}{
				{"valid, colon in password", basicHeader("hooks", "pa:ss word"), nil},
				{"valid again (cached)", basicHeader("hooks", "pa:ss word"), nil},
				{"wrong password", basicHeader("hooks", "pass word"), verify.ErrMismatch},
				{"unknown user", basicHeader("nobody", "pa:ss word"), verify.ErrMismatch},
				{"empty password", basicHeader("hooks", ""), verify.ErrMismatch},
				{"no header", http.Header{}, verify.ErrMissing},
				{"no colon", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("hookspass"))}}, verify.ErrMalformed},
				{"not base64", http.Header{"Authorization": {"Basic !!!"}}, verify.ErrMalformed},
				{"bearer", http.Header{"Authorization": {"Bearer abc"}}, verify.ErrMalformed},
				{"non-UTF-8", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("hooks:\xff\xfe"))}}, verify.ErrMismatch},
			}
			for _, tc := range cases {
				err := v.Verify(newRequest(tc.h, nil), nil)
				if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
				}
			}
		})
	}
	for _, bad := range []verify.Spec{
		{Method: "basic", Username: "", Password: "x"},
		{Method: "basic", Username: "a:b", Password: "x"},
		{Method: "basic", Username: "a", Password: "$2a$10$short"},
		{Method: "basic", Username: "a", Password: "$argon2id$v=19$m=x"},
	} {
		if _, err := verify.New(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestAPIKey(t *testing.T) {
	cases := []struct {
		spec verify.Spec
		url  string
		h    http.Header
		want error
	}{
		{verify.Spec{Secrets: []string{"k1", "k2"}}, "/", http.Header{"X-Api-Key": {"k2"}}, nil},
		{verify.Spec{Secrets: []string{"k1", "k2"}}, "/", http.Header{"X-Api-Key": {"k3"}}, verify.ErrMismatch},
		{verify.Spec{Secrets: []string{"k1"}}, "/", http.Header{"X-Api-Key": {"k1x"}}, verify.ErrMismatch},
		{verify.Spec{Secrets: []string{"k1"}}, "/?api_key=k1", http.Header{}, verify.ErrMissing},
		{verify.Spec{Secrets: []string{"k1"}, Header: "X-Token"}, "/", http.Header{"X-Token": {"k1"}}, nil},
		{verify.Spec{Secrets: []string{"k1"}, Query: "token"}, "/?token=k1", http.Header{}, nil},
		{verify.Spec{Secrets: []string{"k1"}, Query: "token"}, "/?token=k2", http.Header{"X-Api-Key": {"k1"}}, verify.ErrMismatch},
		{verify.Spec{Secrets: []string{"k1"}, Query: "token"}, "/", http.Header{"X-Api-Key": {"k1"}}, verify.ErrMissing},
		{verify.Spec{Secrets: []string{"k1"}, Bearer: true}, "/", http.Header{"Authorization": {"Bearer k1"}}, nil},
		{verify.Spec{Secrets: []string{"k1"}, Bearer: true}, "/", http.Header{"Authorization": {"bearer k1"}}, nil},
		{verify.Spec{Secrets: []string{"k1"}, Bearer: true}, "/", http.Header{"Authorization": {"Basic k1"}}, verify.ErrMissing},
	}
	for i, tc := range cases {
		tc.spec.Method = "api_key"
		v := mustNew(t, tc.spec)
		r := newRequest(tc.h, nil)
		r.URL.RawQuery = ""
		if q := tc.url[1:]; q != "" {
			r.URL.RawQuery = q[1:]
		}
		err := v.Verify(r, nil)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("case %d: got %v, want %v", i, err, tc.want)
		}
	}
	if _, err := verify.New(verify.Spec{Method: "api_key", Secrets: []string{"k"}, Header: "X", Bearer: true}); err == nil {
		t.Error("two key places accepted")
	}
}

func TestHMACRecipe(t *testing.T) {
	algs := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}
	encs := map[string]func([]byte) string{
		"hex": hex.EncodeToString, "base64": base64.StdEncoding.EncodeToString, "base64url": base64.RawURLEncoding.EncodeToString,
	}
	for alg, newHash := range algs {
		for enc, encode := range encs {
			t.Run(alg+"/"+enc, func(t *testing.T) {
				v := mustNew(t, verify.Spec{
					Method: "hmac", Secrets: []string{"s3"}, Header: "X-Sig", Algorithm: alg, Encoding: enc,
					Prefix: "v1=", TimestampHeader: "X-Ts", Signed: "{timestamp}.{header.X-Tenant}.{body}",
				})
				sign := func(secret string, ts time.Time, body string) http.Header {
					m := hmac.New(newHash, []byte(secret))
					m.Write([]byte(unix(ts) + ".acme." + body))
					return http.Header{"X-Sig": {"v1=" + encode(m.Sum(nil))}, "X-Ts": {unix(ts)}, "X-Tenant": {"acme"}}
				}
				body := string(trapBody)
				check := func(name string, h http.Header, want error) {
					t.Helper()
					err := v.Verify(newRequest(h, []byte(body)), []byte(body))
					if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
						t.Errorf("%s: got %v, want %v", name, err, want)
					}
				}
				check("valid", sign("s3", fixedNow, body), nil)
				check("wrong secret", sign("s4", fixedNow, body), verify.ErrMismatch)
				h := sign("s3", fixedNow, body)
				h.Set("X-Tenant", "other")
				check("signed header changed", h, verify.ErrMismatch)
				h = sign("s3", fixedNow, body)
				h.Set("X-Sig", h.Get("X-Sig")[3:])
				check("no prefix", h, verify.ErrMalformed)
				check("stale", sign("s3", fixedNow.Add(-time.Hour), body), verify.ErrTimestamp)
				h = sign("s3", fixedNow, body)
				h.Del("X-Ts")
				check("no timestamp", h, verify.ErrMissing)
			})
		}
	}
	for _, bad := range []verify.Spec{
		{Method: "hmac", Secrets: []string{"s"}},
		{Method: "hmac", Secrets: []string{"s"}, Header: "X", Algorithm: "md5"},
		{Method: "hmac", Secrets: []string{"s"}, Header: "X", Encoding: "base32"},
		{Method: "hmac", Secrets: []string{"s"}, Header: "X", Signed: "{nonce}.{body}"},
		{Method: "hmac", Secrets: []string{"s"}, Header: "X", Signed: "{timestamp}.{body}"},
		{Method: "hmac", Header: "X"},
		{Method: "standard", Secrets: []string{"whsec_!!notbase64"}},
		{Method: "discord", Secrets: []string{"abcd"}},
		{Method: "nosuch", Secrets: []string{"s"}},
	} {
		if _, err := verify.New(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// A timestamp checked but not signed lets a captured request replay
// forever with a fresh header: refused at load, saying why.
func TestHMACUnsignedTimestamp(t *testing.T) {
	for _, signed := range []string{"", "{body}", "{header.X-Other}.{body}", "{timestamp"} {
		_, err := verify.New(verify.Spec{Method: "hmac", Secrets: []string{"s"}, Header: "X-Sig", TimestampHeader: "X-Ts", Signed: signed})
		if err == nil {
			t.Errorf("signed %q with timestamp_header: accepted", signed)
			continue
		}
		if signed != "{timestamp" && (!strings.Contains(err.Error(), "{timestamp}") || !strings.Contains(err.Error(), "replay")) {
			t.Errorf("signed %q: the error does not say why: %v", signed, err)
		}
	}
	for _, signed := range []string{"{timestamp}{body}", "{header.x-ts}.{body}"} {
		mustNew(t, verify.Spec{Method: "hmac", Secrets: []string{"s"}, Header: "X-Sig", TimestampHeader: "X-Ts", Signed: signed})
	}
}

func TestLinearBodyTimestamp(t *testing.T) {
	v := mustNew(t, verify.Spec{Method: "linear", Secrets: []string{"lin"}})
	for ms, want := range map[int64]error{
		fixedNow.UnixMilli():                        nil,
		fixedNow.Add(-10 * time.Minute).UnixMilli(): verify.ErrTimestamp,
		fixedNow.Add(10 * time.Minute).UnixMilli():  verify.ErrTimestamp,
		fixedNow.Add(-30 * time.Second).UnixMilli(): nil,
	} {
		body := []byte(fmt.Sprintf(`{"action":"create","webhookTimestamp":%d}`, ms))
		h := http.Header{"Linear-Signature": {hex.EncodeToString(mac(sha256.New, []byte("lin"), string(body)))}}
		if err := v.Verify(newRequest(h, body), body); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("webhookTimestamp %d: got %v, want %v", ms, err, want)
		}
	}
}
