package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// petSite is the canonical flow: map petname/petstatus to Name/Status,
// add the pet store's API key, POST it, retry while it is down.
func petSite(storeURL, backoff, extra string) string {
	return fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /pets {
		auth api_key sender-key
		reshape {
			set Name {json.petname} required
			set Status {json.petstatus}
			set Source {http.request.header.X-Source}
		}
		forward %s/pets {
			header X-Api-Key store-key
			retries 3
			backoff %s
			%s
		}
	}
}
`, storeURL, backoff, extra)
}

func TestPetFlowRetriesUntilStoreIsUp(t *testing.T) {
	store := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("X-Api-Key") != "store-key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "keep-alive")
		w.Header().Set("X-Pet-Id", "42")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":42}`))
	})
	tester := startCaddy(t, petSite(store.URL, "10ms 50ms", ""))

	status, hdr, body := post(t, tester, "/pets", "application/json", http.Header{
		"X-Api-Key": {"sender-key"},
		"X-Source":  {"shop"},
	}, []byte(`{"petname":"Gromit","petstatus":"Sold","ignored":true}`))
	if status != http.StatusCreated || string(body) != `{"id":42}` {
		t.Fatalf("sender got %d %q, want the store's 201 {\"id\":42}", status, body)
	}
	if hdr.Get("X-Pet-Id") != "42" {
		t.Errorf("upstream header not passed back: %v", hdr)
	}
	got := store.requests()
	if len(got) != 3 {
		t.Fatalf("store saw %d attempts, want 3", len(got))
	}
	key := got[0].header.Get("Idempotency-Key")
	if key == "" {
		t.Fatal("no Idempotency-Key")
	}
	for i, r := range got {
		if string(r.body) != `{"Name":"Gromit","Status":"Sold","Source":"shop"}` {
			t.Errorf("attempt %d body %s", i+1, r.body)
		}
		if r.header.Get("Idempotency-Key") != key {
			t.Errorf("attempt %d Idempotency-Key %q, want %q", i+1, r.header.Get("Idempotency-Key"), key)
		}
		if a := r.header.Get("Webhook-Attempt"); a != strconv.Itoa(i+1) {
			t.Errorf("attempt %d Webhook-Attempt %q", i+1, a)
		}
		if r.header.Get("X-Api-Key") != "store-key" || r.header.Get("Content-Type") != "application/json" || r.method != http.MethodPost || r.path != "/pets" {
			t.Errorf("attempt %d: %s %s %v", i+1, r.method, r.path, r.header)
		}
	}
}

func TestForwardOutcomes(t *testing.T) {
	type want struct {
		status   int
		attempts int
		inBody   string
	}
	cases := []struct {
		name    string
		respond func(n int, w http.ResponseWriter, r *http.Request)
		backoff string
		extra   string
		want    want
	}{
		{
			name:    "400 is not retried and passed back",
			respond: func(n int, w http.ResponseWriter, r *http.Request) { http.Error(w, "bad pet", http.StatusBadRequest) },
			want:    want{status: 400, attempts: 1, inBody: "bad pet"},
		},
		{
			name:    "503 until retries are exhausted gives 502",
			respond: func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			want:    want{status: 502, attempts: 4, inBody: "4 attempts"},
		},
		{
			name: "connection reset is retried",
			respond: func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					conn, _, _ := w.(http.Hijacker).Hijack()
					_ = conn.(*net.TCPConn).SetLinger(0)
					_ = conn.Close()
					return
				}
				w.WriteHeader(http.StatusAccepted)
			},
			want: want{status: 202, attempts: 2},
		},
		{
			name: "hanging upstream times out per attempt, then 504",
			respond: func(n int, w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			extra: "timeout 150ms",
			want:  want{status: 504, attempts: 4},
		},
		{
			name: "429 with Retry-After is retried",
			respond: func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusOK)
			},
			backoff: "10ms 2s",
			want:    want{status: 200, attempts: 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := newUpstream(t, tc.respond)
			backoff := tc.backoff
			if backoff == "" {
				backoff = "10ms 50ms"
			}
			tester := startCaddy(t, petSite(store.URL, backoff, tc.extra))
			status, _, body := post(t, tester, "/pets", "application/json", http.Header{"X-Api-Key": {"sender-key"}}, []byte(`{"petname":"Gromit","petstatus":"Sold"}`))
			if status != tc.want.status {
				t.Fatalf("status %d (%s), want %d", status, body, tc.want.status)
			}
			if !strings.Contains(string(body), tc.want.inBody) {
				t.Errorf("body %q does not contain %q", body, tc.want.inBody)
			}
			got := store.requests()
			if len(got) != tc.want.attempts {
				t.Fatalf("upstream saw %d attempts, want %d", len(got), tc.want.attempts)
			}
			if tc.name == "429 with Retry-After is retried" {
				if gap := got[1].at.Sub(got[0].at); gap < 900*time.Millisecond {
					t.Errorf("retried after %v, Retry-After asked for 1s", gap)
				}
			}
		})
	}
}

func TestForwardToDownUpstream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	tester := startCaddy(t, petSite("http://"+addr, "10ms 50ms", ""))
	status, _, body := post(t, tester, "/pets", "application/json", http.Header{"X-Api-Key": {"sender-key"}}, []byte(`{"petname":"Gromit"}`))
	if status != http.StatusBadGateway {
		t.Fatalf("status %d (%s), want 502", status, body)
	}
	if strings.Contains(string(body), addr) {
		t.Errorf("error body names the upstream address: %s", body)
	}
}

func TestDeadlineBoundsSyncDelivery(t *testing.T) {
	store := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway {
		auth api_key sender-key
		deadline 300ms
		forward %s/pets {
			retries 100
			backoff 50ms 50ms
		}
	}
}
`, store.URL))
	status, _, body := post(t, tester, "/", "application/json", http.Header{"X-Api-Key": {"sender-key"}}, []byte(`{}`))
	if status != http.StatusGatewayTimeout {
		t.Fatalf("status %d (%s), want 504", status, body)
	}
	if n := len(store.requests()); n >= 100 {
		t.Errorf("deadline did not stop retries: %d attempts", n)
	}
}

func TestFanOut(t *testing.T) {
	a := newUpstream(t, nil)
	b := newUpstream(t, nil)
	failing := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /ok {
		auth api_key k
		forward %s/a
		forward %s/b {
			body original
		}
	}
	webhook_gateway /partial {
		auth api_key k
		forward %s/a
		forward %s/missing
	}
}
`, a.URL, b.URL, a.URL, failing.URL))

	status, _, body := post(t, tester, "/ok", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{"x":1}`))
	var summary struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Actions []struct {
			URL      string `json:"url"`
			Status   int    `json:"status"`
			Attempts int    `json:"attempts"`
			Error    string `json:"error"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(body, &summary); err != nil || status != 200 || summary.Status != "delivered" || len(summary.Actions) != 2 {
		t.Fatalf("all ok: %d %s", status, body)
	}
	if len(a.requests()) != 1 || len(b.requests()) != 1 || string(b.requests()[0].body) != `{"x":1}` {
		t.Fatalf("fan-out deliveries: a=%d b=%d", len(a.requests()), len(b.requests()))
	}
	if a.requests()[0].header.Get("Idempotency-Key") != b.requests()[0].header.Get("Idempotency-Key") {
		t.Error("actions of one event got different Idempotency-Keys")
	}

	status, _, body = post(t, tester, "/partial", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{"x":1}`))
	summary.Actions = nil
	if err := json.Unmarshal(body, &summary); err != nil || status != 502 || summary.Status != "failed" || len(summary.Actions) != 2 {
		t.Fatalf("partial failure: %d %s", status, body)
	}
	if summary.Actions[1].Status != 404 || summary.Actions[1].Attempts != 1 || summary.Actions[1].Error == "" || summary.Actions[0].Error != "" {
		t.Errorf("summary %+v", summary.Actions)
	}
}

func TestOutboundSignatures(t *testing.T) {
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	std := newUpstream(t, nil)
	gh := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway {
		auth api_key k
		forward %s/std {
			sign standard %s
		}
		forward %s/gh {
			sign github outbound-secret
		}
	}
}
`, std.URL, whsec, gh.URL))
	payload := []byte(`{"event":"pet.sold","name":"Gromit \u00e9"}`)
	if status, _, body := post(t, tester, "/", "application/json", http.Header{"X-Api-Key": {"k"}}, payload); status != 200 {
		t.Fatalf("status %d %s", status, body)
	}
	wh, err := standardwebhooks.NewWebhook(whsec)
	if err != nil {
		t.Fatal(err)
	}
	sr := std.requests()[0]
	if err := wh.Verify(sr.body, sr.header); err != nil {
		t.Errorf("Standard Webhooks library rejects our signature: %v (headers %v)", err, sr.header)
	}
	if sr.header.Get("webhook-id") != sr.header.Get("Idempotency-Key") {
		t.Errorf("webhook-id %q differs from Idempotency-Key %q", sr.header.Get("webhook-id"), sr.header.Get("Idempotency-Key"))
	}
	gr := gh.requests()[0]
	if err := github.ValidateSignature(gr.header.Get("X-Hub-Signature-256"), gr.body, []byte("outbound-secret")); err != nil {
		t.Errorf("go-github rejects our signature: %v", err)
	}
	if gr.header.Get("X-Hub-Signature-256") != githubSignature("outbound-secret", gr.body) {
		t.Error("GitHub signature differs from the documented algorithm")
	}
}

// TestURLPlaceholdersCannotRedirect: a payload value in the forward URL's
// path stays inside its segment, escaped (values that would climb the
// path are refused: TestForwardPathValuesRefused).
func TestURLPlaceholdersCannotRedirect(t *testing.T) {
	store := newUpstream(t, nil)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway {
		auth api_key k
		forward %s/pets/{http.webhook_gateway.json.name}?tag={http.webhook_gateway.json.tag}
	}
}
`, store.URL))
	status, _, body := post(t, tester, "/", "application/json", http.Header{"X-Api-Key": {"k"}},
		[]byte(`{"name":"..?x=1#frag@evil.example:80","tag":"a&b=c"}`))
	if status != 200 {
		t.Fatalf("status %d %s", status, body)
	}
	got := store.requests()
	if len(got) != 1 {
		t.Fatalf("store saw %d requests", len(got))
	}
	if got[0].path != "/pets/..?x=1#frag@evil.example:80" || strings.Count(got[0].rawURI, "?") != 1 || strings.Contains(got[0].rawURI, "&b=c") {
		t.Errorf("payload escaped its place in the URL: %s", got[0].rawURI)
	}
}

// Incoming-webhook URLs (Slack, Discord) carry their token in the path: a
// fan-out answer and the metrics name actions, never show their URLs.
func TestActionsNamedNotByURL(t *testing.T) {
	slack := newUpstream(t, nil)
	other := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /notify {
		name notify
		auth api_key k
		forward %s/services/T0001/B0002/SLACKSECRETTOKEN {
			name slack
		}
		forward %s/api/webhooks/123/DISCORDSECRETTOKEN {
			retries 0
		}
	}
}
`, slack.URL, other.URL))
	status, _, body := post(t, tester, "/notify", "application/json", http.Header{"X-Api-Key": {"k"}}, []byte(`{"text":"hi"}`))
	if status != http.StatusBadGateway {
		t.Fatalf("fan-out: %d %s", status, body)
	}
	if bytes.Contains(body, []byte("SECRETTOKEN")) || bytes.Contains(body, []byte("/services/")) || bytes.Contains(body, []byte("127.0.0.1")) {
		t.Errorf("answer shows an upstream URL: %s", body)
	}
	var summary struct {
		Actions []struct {
			Action string `json:"action"`
			Status int    `json:"status"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(body, &summary); err != nil || len(summary.Actions) != 2 ||
		summary.Actions[0].Action != "slack" || summary.Actions[1].Action != "1" || summary.Actions[1].Status != 502 {
		t.Errorf("summary %s", body)
	}
	resp, err := http.Get(adminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(metrics, []byte("SECRETTOKEN")) {
		t.Error("metrics show an upstream URL")
	}
	for _, want := range []string{
		`caddy_webhook_gateway_attempts_total{action="slack",hook="notify"}`,
		`caddy_webhook_gateway_attempts_total{action="1",hook="notify"}`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
