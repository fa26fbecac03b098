package caddymodule_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Every forward option, in sync and in async mode, against one recording
// upstream: the outbound requests must be the same (method, URL, headers,
// body, signature), apart from the headers that carry the time of the
// attempt. One code path builds both; this holds it there.
func TestForwardOptionsSameInSyncAndAsync(t *testing.T) {
	stdSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("outbound standard secret 32 b!!!"))
	type got struct {
		method, uri string
		header      http.Header
		body        string
	}
	var mu sync.Mutex
	seen := map[string]got{} // by X-Case and mode
	record := func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1<<16)
		n, _ := r.Body.Read(b)
		mu.Lock()
		seen[r.Header.Get("X-Case")+" "+r.Header.Get("X-Mode")] = got{r.Method, r.RequestURI, r.Header.Clone(), string(b[:n])}
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}
	plain := httptest.NewServer(http.HandlerFunc(record))
	t.Cleanup(plain.Close)
	tlsUp := httptest.NewTLSServer(http.HandlerFunc(record))
	t.Cleanup(tlsUp.Close)

	cases := []struct{ name, url, options string }{
		{"plain", plain.URL + "/p", ""},
		{"method", plain.URL + "/m", "method PUT"},
		{"headers", plain.URL + "/h", "header X-Static fixed-value\n\t\t\theader X-Tenant {http.request.header.X-Tenant}\n\t\t\theader X-Mixed t={http.request.header.X-Tenant};k={http.webhook_gateway.json.kind}"},
		{"url placeholders", plain.URL + "/tenants/{http.webhook_gateway.json.tenant}/{http.webhook_gateway.json.kind}?src={http.request.header.X-Tenant}&q=1", ""},
		{"body original", plain.URL + "/o", "body original"},
		{"sign github", plain.URL + "/g", "sign github gh-outbound-secret"},
		{"sign hmac", plain.URL + "/s", "sign hmac hmac-outbound-secret {\n\t\t\t\theader X-Sig\n\t\t\t\talgorithm sha512\n\t\t\t\tencoding base64\n\t\t\t\tprefix v1=\n\t\t\t}"},
		{"sign standard", plain.URL + "/std", "sign standard " + stdSecret},
		{"timeout retries backoff retry_on", plain.URL + "/r", "timeout 5s\n\t\t\tretries 2\n\t\t\tbackoff 10ms 20ms\n\t\t\tretry_on 500 503"},
		{"tls", tlsUp.URL + "/tls", "tls_insecure_skip_verify"},
		{"named", plain.URL + "/n", "name billing"},
	}
	var sites strings.Builder
	for i, c := range cases {
		for _, mode := range []string{"sync", "async"} {
			fmt.Fprintf(&sites, `
	webhook_gateway /%s/%d {
		name %s-%d
		auth api_key k
		id_from {header.X-Event-Id}
		mode %s
		reshape keep {
			set added {json.kind}
		}
		forward %s {
			header X-Case %d
			header X-Mode {http.request.header.X-Mode}
			%s
		}
	}`, mode, i, mode, i, mode, c.url, i, c.options)
		}
	}
	tester, _ := asyncCaddy(t, "", "http://localhost:9080 {"+sites.String()+"\n}\n")

	body := []byte(`{"tenant":"acme","kind":"invoice","amount":12}`)
	for i := range cases {
		for _, mode := range []string{"sync", "async"} {
			hdr := http.Header{"X-Api-Key": {"k"}, "X-Event-Id": {fmt.Sprintf("evt-%d", i)}, "X-Tenant": {"acme corp"}, "X-Mode": {mode}}
			status, _, b := post(t, tester, fmt.Sprintf("/%s/%d", mode, i), "application/json", hdr, body)
			if want := map[string]int{"sync": 200, "async": 202}[mode]; status != want {
				t.Fatalf("%s %s: %d %s", cases[i].name, mode, status, b)
			}
		}
	}
	waitFor(t, "every async delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2*len(cases)
	})

	// headers that carry the attempt's time or the mode; the standard
	// signature covers the timestamp, so it is checked on its own
	timing := []string{"Webhook-Timestamp", "Webhook-Signature", "X-Mode", "Accept-Encoding"}
	for i, c := range cases {
		s, a := seen[fmt.Sprintf("%d sync", i)], seen[fmt.Sprintf("%d async", i)]
		if s.method != a.method || s.uri != a.uri || s.body != a.body {
			t.Errorf("%s: sync %s %s %s, async %s %s %s", c.name, s.method, s.uri, s.body, a.method, a.uri, a.body)
		}
		names := func(h http.Header) []string {
			var out []string
			for k := range h {
				if !slices.Contains(timing, k) {
					out = append(out, k)
				}
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(names(s.header), names(a.header)) {
			t.Errorf("%s: header names differ:\nsync  %v\nasync %v", c.name, names(s.header), names(a.header))
		}
		for _, k := range names(s.header) {
			if !slices.Equal(s.header[k], a.header[k]) {
				t.Errorf("%s: %s sync %q async %q", c.name, k, s.header[k], a.header[k])
			}
		}
		if c.name == "sign standard" {
			for _, g := range []got{s, a} {
				key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(stdSecret, "whsec_"))
				m := hmac.New(sha256.New, key)
				_, _ = fmt.Fprintf(m, "%s.%s.%s", g.header.Get("Webhook-Id"), g.header.Get("Webhook-Timestamp"), g.body)
				if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); g.header.Get("Webhook-Signature") != want {
					t.Errorf("standard signature %q, want %q", g.header.Get("Webhook-Signature"), want)
				}
			}
		}
	}
	// spot checks that the options took effect at all
	if g := seen["1 async"]; g.method != http.MethodPut {
		t.Errorf("method: %s", g.method)
	}
	if g := seen["3 async"]; g.uri != "/tenants/acme/invoice?src=acme+corp&q=1" {
		t.Errorf("url: %s", g.uri)
	}
	if g := seen["2 async"]; g.header.Get("X-Mixed") != "t=acme corp;k=invoice" || g.header.Get("X-Static") != "fixed-value" {
		t.Errorf("headers: %v", g.header)
	}
	if g := seen["4 async"]; g.body != string(body) {
		t.Errorf("body original: %s", g.body)
	}
	if g := seen["0 async"]; g.body != `{"tenant":"acme","kind":"invoice","amount":12,"added":"invoice"}` {
		t.Errorf("body reshaped: %s", g.body)
	}
	if g := seen["5 async"]; g.header.Get("X-Hub-Signature-256") != githubSignature("gh-outbound-secret", []byte(g.body)) {
		t.Errorf("github signature: %v", g.header)
	}
}
