package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestCredentialPlaces(t *testing.T) {
	cases := []struct {
		auth           []AuthConfig
		headers, query []string
	}{
		{[]AuthConfig{{Method: "api_key"}}, []string{"X-Api-Key"}, nil},
		{[]AuthConfig{{Method: "api_key", Header: "x-hook-token"}}, []string{"X-Hook-Token"}, nil},
		{[]AuthConfig{{Method: "api_key", Query: "key"}}, nil, []string{"key"}},
		{[]AuthConfig{{Method: "api_key", Bearer: true}, {Method: "basic"}}, []string{"Authorization"}, nil},
		{
			[]AuthConfig{{Method: "gitlab"}, {Method: "okta"}, {Method: "cloudflare"}, {Method: "buildkite_token"}},
			[]string{"X-Gitlab-Token", "Authorization", "Cf-Webhook-Auth", "X-Buildkite-Token"},
			nil,
		},
		// signatures are bound to the body: not credentials
		{[]AuthConfig{{Method: "github"}, {Method: "stripe"}, {Method: "hmac", Header: "X-Sig"}, {Method: "vonage"}}, nil, nil},
	}
	for _, tc := range cases {
		h, q := credentialPlaces(tc.auth)
		if !slices.Equal(h, tc.headers) || !slices.Equal(q, tc.query) {
			t.Errorf("%+v: headers %q query %q, want %q %q", tc.auth, h, q, tc.headers, tc.query)
		}
	}
}

func TestStripCredentials(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/hook/a%2Fb?x=1&key=s1&k%65y=s2&y=%2F+&key&z=a;key=s3&w=", nil)
	r.Header.Set("X-Api-Key", "s4")
	r.Header.Set("X-Keep", "v")
	stripCredentials(r, []string{"X-Api-Key"}, []string{"key"})
	if r.URL.RawQuery != "x=1&y=%2F+&w=" || r.RequestURI != "/hook/a%2Fb?x=1&y=%2F+&w=" {
		t.Errorf("query %q, RequestURI %q", r.URL.RawQuery, r.RequestURI)
	}
	if r.Header.Get("X-Api-Key") != "" || r.Header.Get("X-Keep") != "v" {
		t.Errorf("headers %v", r.Header)
	}
	r = httptest.NewRequest(http.MethodPost, "/h?key=s1", nil)
	stripCredentials(r, nil, []string{"key"})
	if r.URL.RawQuery != "" || r.RequestURI != "/h" || r.URL.String() != "/h" {
		t.Errorf("query %q, RequestURI %q, URL %s", r.URL.RawQuery, r.RequestURI, r.URL)
	}
}

// FuzzDropQueryParams: after dropping, no parser that splits on "&" or
// ";" reads the credential, and every other parameter Go reads is kept.
func FuzzDropQueryParams(f *testing.F) {
	for _, q := range []string{
		"key=s", "a=1&key=s&b=2", "k%65y=s", "key", "key=", "a=1;key=s", "key=s;a=1", "%6b%65%79=s", "key%3D=s",
		"&&key=s&&", "key=s&key=t", "ke%y=s", "%zz=1&key=s", "a=%3Bkey%3Ds", "key+=s", "+key=s", "KEY=s",
	} {
		f.Add(q)
	}
	const name = "key"
	f.Fuzz(func(t *testing.T, q string) {
		out, changed := dropQueryParams(q, []string{name})
		if !changed && out != q {
			t.Fatalf("unchanged but %q became %q", q, out)
		}
		before, _ := url.ParseQuery(q)
		after, _ := url.ParseQuery(out)
		if _, ok := after[name]; ok {
			t.Fatalf("%q -> %q: Go still reads %s", q, out, name)
		}
		for k, v := range before {
			if k != name && !slices.Equal(after[k], v) {
				t.Fatalf("%q -> %q: %s was %q, now %q", q, out, k, v, after[k])
			}
		}
		for _, part := range strings.FieldsFunc(out, func(r rune) bool { return r == '&' || r == ';' }) {
			n, _, _ := strings.Cut(part, "=")
			if u, err := url.QueryUnescape(n); err == nil && u == name {
				t.Fatalf("%q -> %q: part %q names %s", q, out, part, name)
			}
		}
	})
}

// BenchmarkStripCredentials: a query key among other parameters and a
// header, as a gate removes them from every request that passes.
func BenchmarkStripCredentials(b *testing.B) {
	headers, query := credentialPlaces([]AuthConfig{{Method: "api_key", Query: "key"}, {Method: "basic"}})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r := httptest.NewRequest(http.MethodPost, "/hooks/a?x=1&key=secret-value&y=2", nil)
		r.Header.Set("Authorization", "Basic aG9vazpwYXNz")
		b.StartTimer()
		stripCredentials(r, headers, query)
	}
}
