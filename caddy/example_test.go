package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCaddyfileExample walks through the README's quick start from a
// fresh copy of the repository (its tracked files): the build command as
// the README writes it, then the run command on the bundled
// Caddyfile.example, whose ports are rewritten to free ones so that it
// runs whatever else listens on the documented ports. It then sends the
// requests the example's comments document, checking the answers they
// promise, and runs the README's command line examples on it.
func TestCaddyfileExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	clone := filepath.Join(dir, "clone")
	copyTracked(t, "..", clone)
	build, run := quickStart(t, filepath.Join(clone, "README.md"))
	if len(build) < 2 || build[0] != "go" || len(run) < 2 || !strings.HasPrefix(run[0], "./") {
		t.Fatalf("quick start commands %q and %q", build, run)
	}
	cmd := exec.Command(goCommand(t), build[1:]...)
	cmd.Dir = clone
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(build, " "), err, out)
	}
	bin := filepath.Join(clone, run[0])

	caddyfile := filepath.Join(clone, "Caddyfile.example")
	example, err := os.ReadFile(caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	gateway, app, store, admin := freePort(t), freePort(t), freePort(t), freePort(t)
	reports, receiver := freePort(t), freePort(t)
	config := strings.NewReplacer(
		"localhost:8080", fmt.Sprintf("localhost:%d", gateway),
		"localhost:9001", fmt.Sprintf("localhost:%d", app),
		"localhost:9002", fmt.Sprintf("localhost:%d", store),
		"localhost:9003", fmt.Sprintf("localhost:%d", reports),
		"127.0.0.1:9443", fmt.Sprintf("127.0.0.1:%d", receiver),
		"localhost:2019", fmt.Sprintf("localhost:%d", admin),
	).Replace(string(example))
	for _, line := range strings.Split(config, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, port := range []string{":8080", ":9001", ":9002", ":9003", ":9443", ":2019"} {
			if strings.Contains(line, port) {
				t.Fatalf("Caddyfile.example uses %s in a form the test does not rewrite: %s", port, line)
			}
		}
	}
	if err := os.WriteFile(caddyfile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := &caddyProcess{cmd: exec.Command(bin, run[1:]...)}
	proc.cmd.Dir = clone
	proc.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	proc.cmd.Stdout, proc.cmd.Stderr = &proc.logs, &proc.logs
	proc.start(t)
	if !waitDial(fmt.Sprintf("127.0.0.1:%d", gateway), 30*time.Second) {
		proc.kill()
		t.Fatalf("caddy did not start:\n%s", proc.logs.String())
	}
	defer proc.stop(t)
	base := fmt.Sprintf("http://localhost:%d", gateway)

	send := func(path, contentType string, header map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
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
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/webhook_gateway/event?hook=pets-async&id=%s", admin, acc.ID))
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

	// 4. hook URLs issued at run time: create, list, read, validate, push,
	// a token never issued, delete
	mgmt := func(method, path, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("demo", "demo-password")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	st, got = mgmt(http.MethodPost, "/wh/config", `{"datasource":"github","event":"push","tsField":"commits[0].timestamp"}`)
	var hook struct{ APIToken, Token, TenantID, TSField, HookURL string }
	if st != http.StatusOK || json.Unmarshal([]byte(got), &hook) != nil || hook.TenantID != "demo" || hook.TSField != "commits[0].timestamp" ||
		hook.HookURL != fmt.Sprintf("%s/wh/%s/%s", base, hook.APIToken, hook.Token) {
		t.Fatalf("create hook: %d %s", st, got)
	}
	st, got = mgmt(http.MethodGet, "/wh/config", "")
	expect("list hooks", st, got, http.StatusOK, `"token":"`+hook.Token+`"`)
	st, got = mgmt(http.MethodGet, "/wh/config/"+hook.Token, "")
	expect("read hook", st, got, http.StatusOK, `"hookUrl":"`+hook.HookURL+`"`)
	st, _ = mgmt(http.MethodHead, "/wh/config/"+hook.Token, "")
	expect("validate hook", st, "", http.StatusOK, "")
	push := `{"ref":"refs/heads/main","commits":[{"id":"6113728f","timestamp":"2026-11-23T10:00:00Z"}]}`
	st, got = send(strings.TrimPrefix(hook.HookURL, base), "application/json", nil, push)
	expect("push to the hook", st, got, http.StatusOK, "app got POST /events/demo/github/push?ts=2026-11-23T10%3A00%3A00Z id=")
	st, got = send("/wh/00000000-0000-4000-8000-000000000000/0000000000000000000000000000000000000000", "application/json", nil, `{}`)
	expect("token never issued", st, got, http.StatusUnauthorized, "unauthorized")
	st, _ = mgmt(http.MethodDelete, "/wh/config/"+hook.Token, "")
	expect("delete hook", st, "", http.StatusNoContent, "")
	st, got = send(strings.TrimPrefix(hook.HookURL, base), "application/json", nil, push)
	expect("push after delete", st, got, http.StatusUnauthorized, "unauthorized")
	st, _ = mgmt(http.MethodHead, "/wh/config/"+hook.Token, "")
	expect("validate deleted hook", st, "", http.StatusNotFound, "")

	// 5. request-reply: 202, the callback at the receiver (its log), the
	// fetch with the token; 401, 404 and an http:// callback refused
	call := func(method, path, token, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	cb := fmt.Sprintf("https://127.0.0.1:%d/callback?job=42", receiver)
	st, _, got = call(http.MethodPost, "/reports", "demo-reports-key", fmt.Sprintf(`{"month":"2026-11","webhook_url":%q}`, cb))
	if st != http.StatusAccepted || !strings.Contains(got, `"status":"queued"`) {
		t.Fatalf("reports: %d %s", st, got)
	}
	callbackURI := regexp.MustCompile(`"uri":"/callback\?job=42&id=([0-9a-f]{32})"`)
	var secret string
	deadline = time.Now().Add(30 * time.Second)
	for secret == "" {
		logged, _ := os.ReadFile(filepath.Join(clone, "webhook_gateway-demo", "callbacks.log"))
		if m := callbackURI.FindSubmatch(logged); m != nil {
			secret = string(m[1])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no callback in the receiver's log: %s", logged)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, hdr, got := call(http.MethodGet, "/webhook?id="+secret, "demo-reports-key", "")
	if st != http.StatusOK || got != "month,orders\n2026-11,1234\n" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || hdr.Get("Webhook-Upstream-Status") != "200" {
		t.Errorf("fetch: %d %v %q", st, hdr, got)
	}
	st, _, _ = call(http.MethodGet, "/webhook?id="+secret, "", "")
	expect("fetch without the token", st, "", http.StatusUnauthorized, "")
	st, _, _ = call(http.MethodGet, "/webhook?id="+strings.Repeat("0", 32), "demo-reports-key", "")
	expect("fetch of an unknown id", st, "", http.StatusNotFound, "")
	st, _, got = call(http.MethodPost, "/reports", "demo-reports-key", `{"month":"2026-11","webhook_url":"http://127.0.0.1:9/callback"}`)
	expect("http:// callback", st, got, http.StatusBadRequest, "callback URL must use https://")

	// 6. the README's "Command line" commands on the example
	out, errOut, code := cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "github", "--secret", "demo-github-secret",
		"--url", base+"/hooks/github", "--data", `{"action":"opened"}`)
	if code != 0 || !strings.Contains(out, `app got POST /hooks/github id=`) {
		t.Errorf("send: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "pets",
		"--data", `{"petname":"Gromit","petstatus":"Sold"}`)
	if code != 0 || strings.TrimSpace(out) != `{"Name":"Gromit","Status":"Sold"}` {
		t.Errorf("reshape: exit %d %q\n%s", code, out, errOut)
	}
	out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "pets", "--data", `{}`)
	if code != 1 || strings.TrimSpace(out) != `422 Unprocessable Entity: required field "petname" is missing` {
		t.Errorf("reshape, no petname: exit %d %q", code, out)
	}
	// the admin address comes from the config, as the README says
	out, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "events", "--config", caddyfile, "--hook", "pets-async", "--id", acc.ID)
	if code != 0 || !strings.Contains(out, `"status": "delivered"`) {
		t.Errorf("events: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "replay", "--config", caddyfile, "--hook", "pets-async", "--id", acc.ID)
	if code != 0 || !strings.Contains(out, `"replayed": [`) {
		t.Errorf("replay: exit %d\n%s\n%s", code, out, errOut)
	}
}

// copyTracked copies the files git tracks in repo (what a fresh clone
// has, with their working-tree content) to dst.
func copyTracked(t *testing.T, repo, dst string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(repo, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// quickStart reads the two commands of the README's quick start block:
// the build and the run, without their comments.
func quickStart(t *testing.T, readme string) (build, run []string) {
	t.Helper()
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "## Quick start")
	if !ok {
		t.Fatal("README has no Quick start section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("Quick start has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if f := strings.Fields(line); len(f) > 0 {
			cmds = append(cmds, f)
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("Quick start has %d commands, want build and run: %q", len(cmds), cmds)
	}
	return cmds[0], cmds[1]
}
