package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCaddyfileExample runs the README's first command on the bundled
// Caddyfile.example (the built binary, from a temporary directory so its
// demo store lands there) and sends the requests its comments document,
// checking the answers they promise.
func TestCaddyfileExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:2019"} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.Close()
			t.Skipf("%s is taken; the example needs it", addr)
		}
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	example, err := filepath.Abs("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	proc := runCaddy(t, bin, dir, example, "127.0.0.1:8080")
	defer proc.stop(t)

	send := func(path, contentType string, header map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://localhost:8080"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(what string, status int, body string, wantStatus int, wantBody string) {
		t.Helper()
		if status != wantStatus || !strings.Contains(body, wantBody) {
			t.Errorf("%s: %d %q, want %d containing %q", what, status, body, wantStatus, wantBody)
		}
	}

	// 1. the gate in front of the app; the signature as GitHub makes it
	body := `{"action":"opened","repository":{"full_name":"octo/hello"}}`
	m := hmac.New(sha256.New, []byte("demo-github-secret"))
	m.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	st, got := send("/hooks/github", "application/json", map[string]string{"X-Hub-Signature-256": sig, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}, body)
	expect("signed", st, got, http.StatusOK, "id=72d3162e-cc78-11e3-81ab-4c9367dc0958: "+body)
	st, got = send("/hooks/github", "application/json", map[string]string{"X-Hub-Signature-256": "sha256=0000"}, body)
	expect("bad signature", st, got, http.StatusUnauthorized, `{"error":"unauthorized","status":401}`)
	st, got = send("/hooks/github", "text/plain", map[string]string{"X-Hub-Signature-256": sig}, body)
	expect("text/plain", st, got, http.StatusUnsupportedMediaType, `"status":415`)

	// 2. the pet store flow
	key := map[string]string{"X-API-Key": "demo-sender-key"}
	st, got = send("/hooks/pets", "application/json", key, `{"petname":"Gromit","petstatus":"Sold"}`)
	expect("pet", st, got, http.StatusCreated, `{"stored":{"Name":"Gromit","Status":"Sold"}}`)
	st, got = send("/hooks/pets", "application/json", key, `{"petstatus":"Sold"}`)
	expect("pet without a name", st, got, http.StatusUnprocessableEntity, `required field \"petname\" is missing`)
	st, got = send("/hooks/pets", "application/json", map[string]string{"X-API-Key": "nope"}, `{"petname":"Gromit"}`)
	expect("wrong key", st, got, http.StatusUnauthorized, "unauthorized")

	// 3. async: 202 at once, delivered in the background, shown by the admin API
	st, got = send("/hooks/pets-async", "application/json", key, `{"petname":"Gromit","petstatus":"Sold"}`)
	var acc struct{ ID, Status string }
	if st != http.StatusAccepted || json.Unmarshal([]byte(got), &acc) != nil || acc.Status != "queued" {
		t.Fatalf("async: %d %s", st, got)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://localhost:2019/webhook_gateway/event?hook=pets-async&id=" + acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Events []struct {
				Status   string
				Attempts []struct{ Status int }
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&list)
		_ = resp.Body.Close()
		var ev struct {
			Status   string
			Attempts []struct{ Status int }
		}
		if len(list.Events) == 1 {
			ev = list.Events[0]
		}
		if ev.Status == "delivered" {
			if len(ev.Attempts) != 1 || ev.Attempts[0].Status != http.StatusCreated {
				t.Errorf("async attempts %+v", ev.Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("async event not delivered: %+v", ev)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
