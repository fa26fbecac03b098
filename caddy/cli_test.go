package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v84/webhook"
)

// cliConfig is a Caddyfile with hooks verifying three presets, a reshaping
// hook and an async hook, whose events the admin API shows.
func cliConfig(admin, port int, dir, upstream string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	webhook_gateway {
		store pebble %s
	}
}
http://127.0.0.1:%d {
	handle /hooks/github {
		webhook_gateway {
			name github
			auth github {env.CLI_GITHUB_SECRET}
		}
		respond "github ok {http.webhook_gateway.id}"
	}
	handle /hooks/stripe {
		webhook_gateway {
			name stripe
			auth stripe whsec_cli_stripe
		}
		respond "stripe ok"
	}
	handle /hooks/standard {
		webhook_gateway {
			name standard
			auth standard whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
		}
		respond "standard ok"
	}
	handle /hooks/pets {
		webhook_gateway {
			name pets
			auth api_key cli-key
			max_size 1KB
			reshape {
				set Name {json.petname} required
				set Status {json.petstatus}
				set Tags.0 {json.tags.1}
			}
			forward %s/pets
		}
	}
	handle /hooks/async {
		webhook_gateway {
			name async
			auth github cli-async-secret
			mode async
			forward %s/async
		}
	}
}
`, admin, filepath.Join(dir, "events"), port, upstream, upstream)
}

// cli runs the built binary with args and stdin, and returns its stdout,
// stderr and exit status.
func cli(t *testing.T, bin string, stdin []byte, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestCLI runs `caddy webhook-gateway send|reshape|events|replay` (the
// built binary) against a running Caddy: what send signs is accepted by
// the hooks and, under --print, by the providers' SDKs; reshape gives the
// hook's output and its 400/422 answers offline; events and replay reach
// the admin API.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	var mu sync.Mutex
	got := map[string][]string{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer upstream.Close()

	port, admin := freePort(t), freePort(t)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(cliConfig(admin, port, dir, upstream.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &caddyProcess{cmd: exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "CLI_GITHUB_SECRET=cli-gh-secret", "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	p.start(t)
	if !waitDial(addr, 30*time.Second) {
		p.kill()
		t.Fatalf("caddy did not start:\n%s", p.logs.String())
	}
	defer p.stop(t)
	base := "http://" + addr

	bodyFile := filepath.Join(dir, "push.json")
	body := []byte(`{"ref":"refs/heads/main","pusher":{"name":"octocat"}}`)
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("send", func(t *testing.T) {
		env := []string{"SEND_SECRET=cli-gh-secret"}
		out, errOut, code := cli(t, bin, nil, env, "webhook-gateway", "send", "--preset", "github", "--secret", "{env.SEND_SECRET}",
			"--url", base+"/hooks/github", "--data", "@"+bodyFile, "--id", "cli-delivery-1")
		if code != 0 || !strings.Contains(out, "200 OK") || !strings.Contains(out, "github ok cli-delivery-1") {
			t.Errorf("github: exit %d\n%s\n%s", code, out, errOut)
		}
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "github", "--secret", "wrong",
			"--url", base+"/hooks/github", "--data", "@"+bodyFile)
		if code == 0 || !strings.Contains(out, "401") {
			t.Errorf("github, wrong secret: exit %d\n%s", code, out)
		}
		out, errOut, code = cli(t, bin, body, nil, "webhook-gateway", "send", "--preset", "stripe", "--secret", "whsec_cli_stripe",
			"--url", base+"/hooks/stripe", "--data", "-")
		if code != 0 || !strings.Contains(out, "stripe ok") {
			t.Errorf("stripe: exit %d\n%s\n%s", code, out, errOut)
		}
		out, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "standard", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"--url", base+"/hooks/standard", "--data", string(body))
		if code != 0 || !strings.Contains(out, "standard ok") {
			t.Errorf("standard: exit %d\n%s\n%s", code, out, errOut)
		}
		// a timestamp outside the hook's tolerance (5m)
		old := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "stripe", "--secret", "whsec_cli_stripe",
			"--url", base+"/hooks/stripe", "--timestamp", old)
		if code == 0 || !strings.Contains(out, "401") {
			t.Errorf("stripe, stale timestamp: exit %d\n%s", code, out)
		}
		// headers added with --header reach the hook
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "gitlab", "--secret", "x",
			"--url", base+"/hooks/pets", "--header", "X-API-Key: cli-key", "--data", `{"petname":"Gromit"}`)
		if code != 0 || !strings.Contains(out, "201") {
			t.Errorf("--header: exit %d\n%s", code, out)
		}
		_, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "githb", "--secret", "x", "--url", base)
		if code == 0 || !strings.Contains(errOut, "did you mean github?") {
			t.Errorf("misspelt preset: exit %d\n%s", code, errOut)
		}
		_, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "discord", "--secret", "x", "--url", base)
		if code == 0 || !strings.Contains(errOut, "cannot be signed") || !strings.Contains(errOut, "public key") {
			t.Errorf("discord: exit %d\n%s", code, errOut)
		}
	})

	t.Run("print", func(t *testing.T) {
		// --print shows the request; the providers' SDKs accept it
		parse := func(out string) (*http.Request, []byte) {
			t.Helper()
			head, reqBody, ok := strings.Cut(out, "\n\n")
			if !ok {
				t.Fatalf("no blank line after the headers:\n%s", out)
			}
			lines := strings.Split(head, "\n")
			parts := strings.Fields(lines[0])
			if len(parts) != 3 || parts[0] != "POST" || parts[2] != "HTTP/1.1" {
				t.Fatalf("request line %q", lines[0])
			}
			b := []byte(strings.TrimSuffix(reqBody, "\n"))
			r := httptest.NewRequest(parts[0], parts[1], bytes.NewReader(b))
			for _, l := range lines[1:] {
				k, v, _ := strings.Cut(l, ": ")
				r.Header.Add(k, v)
			}
			return r, b
		}
		out, errOut, code := cli(t, bin, nil, nil, "webhook-gateway", "send", "--print", "--preset", "github", "--secret", "gh", "--url", base+"/x", "--data", "@"+bodyFile)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		r, b := parse(out)
		if !bytes.Equal(b, body) || r.Header.Get("Host") != addr || r.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("printed request:\n%s", out)
		}
		if _, err := github.ValidatePayload(r, []byte("gh")); err != nil {
			t.Errorf("go-github rejects the printed request: %v\n%s", err, out)
		}
		out, _, _ = cli(t, bin, nil, nil, "webhook-gateway", "send", "--print", "--preset", "stripe", "--secret", "whsec_s", "--url", base+"/x", "--data", "@"+bodyFile)
		r, b = parse(out)
		if err := webhook.ValidatePayload(b, r.Header.Get("Stripe-Signature"), "whsec_s"); err != nil {
			t.Errorf("stripe-go rejects the printed request: %v\n%s", err, out)
		}
		out, _, _ = cli(t, bin, nil, nil, "webhook-gateway", "send", "--print", "--preset", "standard", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--url", base+"/x", "--data", "@"+bodyFile)
		r, b = parse(out)
		wh, _ := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		if err := wh.Verify(b, r.Header); err != nil {
			t.Errorf("standard-webhooks rejects the printed request: %v\n%s", err, out)
		}
	})

	t.Run("reshape", func(t *testing.T) {
		out, errOut, code := cli(t, bin, []byte(`{"petname":"Gromit","petstatus":"Sold","tags":["a","dog"]}`), nil,
			"webhook-gateway", "reshape", "--config", caddyfile, "--hook", "pets")
		if code != 0 || strings.TrimSpace(out) != `{"Name":"Gromit","Status":"Sold","Tags":["dog"]}` {
			t.Errorf("reshape: exit %d %q\n%s", code, out, errOut)
		}
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "pets", "--data", `{"petstatus":"Sold"}`)
		if code != 1 || !strings.Contains(out, "422") || !strings.Contains(out, `required field "petname" is missing`) {
			t.Errorf("missing field: exit %d %q", code, out)
		}
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "pets", "--data", `{"petname":"Gromit",}`)
		if code != 1 || !strings.Contains(out, "400") || !strings.Contains(out, "invalid JSON at byte 20") {
			t.Errorf("invalid JSON: exit %d %q", code, out)
		}
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "pets", "--data", `{"petname":"`+strings.Repeat("x", 1100)+`"}`)
		if code != 1 || !strings.Contains(out, "413") {
			t.Errorf("too large: exit %d %q", code, out)
		}
		// a hook without reshape prints the body as checked
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "github", "--data", `{"a": 1}`)
		if code != 0 || strings.TrimSpace(out) != `{"a": 1}` {
			t.Errorf("no reshape: exit %d %q", code, out)
		}
		// two hooks without a name are both "default": refused, not guessed
		ambiguous := filepath.Join(dir, "Ambiguous.caddyfile")
		twoDefaults := "http://127.0.0.1:1 {\n\thandle /a {\n\t\twebhook_gateway {\n\t\t\tauth api_key a\n\t\t}\n\t}\n\thandle /b {\n\t\twebhook_gateway {\n\t\t\tauth api_key b\n\t\t}\n\t}\n}\n"
		if err := os.WriteFile(ambiguous, []byte(twoDefaults), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", ambiguous, "--hook", "default", "--data", `{}`)
		if code == 0 || !strings.Contains(errOut, `2 hooks are named \"default\"`) {
			t.Errorf("ambiguous hook: exit %d\n%s", code, errOut)
		}
		_, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "reshape", "--config", caddyfile, "--hook", "nope", "--data", `{}`)
		if code == 0 || !strings.Contains(errOut, `no hook named \"nope\"`) || !strings.Contains(errOut, "pets") {
			t.Errorf("unknown hook: exit %d\n%s", code, errOut)
		}
	})

	t.Run("events and replay", func(t *testing.T) {
		adminAddr := fmt.Sprintf("127.0.0.1:%d", admin)
		out, errOut, code := cli(t, bin, nil, nil, "webhook-gateway", "send", "--preset", "github", "--secret", "cli-async-secret",
			"--url", base+"/hooks/async", "--data", `{"n":1}`, "--id", "evt-cli-1")
		if code != 0 || !strings.Contains(out, "202") {
			t.Fatalf("async send: exit %d\n%s\n%s", code, out, errOut)
		}
		var list struct {
			Events []struct {
				ID, Status string
				Attempts   []json.RawMessage
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "events", "--address", adminAddr, "--hook", "async", "--id", "evt-cli-1")
			if code != 0 {
				t.Fatalf("events --id: exit %d\n%s\n%s", code, out, errOut)
			}
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				t.Fatalf("events --id printed %q: %v", out, err)
			}
			if len(list.Events) == 1 && list.Events[0].Status == "delivered" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event not delivered: %s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(out, "\n  \"") {
			t.Errorf("events output is not indented JSON:\n%s", out)
		}
		out, _, code = cli(t, bin, nil, nil, "webhook-gateway", "events", "--address", adminAddr, "--hook", "async", "--status", "delivered", "--limit", "10")
		if code != 0 || !strings.Contains(out, "evt-cli-1") {
			t.Errorf("events list: exit %d\n%s", code, out)
		}
		out, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "replay", "--address", adminAddr, "--hook", "async", "--id", "evt-cli-1")
		if code != 0 || !strings.Contains(out, `"replayed": [`) {
			t.Errorf("replay: exit %d\n%s\n%s", code, out, errOut)
		}
		deadline = time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(got["/async"])
			mu.Unlock()
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the replayed event did not reach the upstream (%d deliveries)", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, errOut, code = cli(t, bin, nil, nil, "webhook-gateway", "events", "--address", adminAddr, "--status", "nonsense")
		if code == 0 || !strings.Contains(errOut, "400") {
			t.Errorf("bad status: exit %d\n%s", code, errOut)
		}
		// the address from --config, as `caddy stop` finds it
		out, _, code = cli(t, bin, nil, []string{"CLI_GITHUB_SECRET=x"}, "webhook-gateway", "events", "--config", caddyfile, "--hook", "async")
		if code != 0 || !strings.Contains(out, "evt-cli-1") {
			t.Errorf("events --config: exit %d\n%s", code, out)
		}
	})

	t.Run("validate while running", func(t *testing.T) {
		// the running Caddy holds the event store: validate says so in words
		_, errOut, code := cli(t, bin, nil, []string{"CLI_GITHUB_SECRET=x", "XDG_DATA_HOME=" + filepath.Join(dir, "data")}, "validate", "--config", caddyfile)
		if code == 0 || !strings.Contains(errOut, "in use by another process") {
			t.Errorf("validate: exit %d\n%s", code, errOut)
		}
	})

	t.Run("reload with an env var set only in the shell", func(t *testing.T) {
		cf := filepath.Join(dir, "Caddyfile.reload")
		config := strings.Replace(cliConfig(admin, port, dir, upstream.URL), "{env.CLI_GITHUB_SECRET}", "{env.CLI_RELOAD_ONLY}", 1)
		if err := os.WriteFile(cf, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := cli(t, bin, nil, []string{"CLI_RELOAD_ONLY=set-in-this-shell"}, "reload", "--config", cf, "--address", fmt.Sprintf("127.0.0.1:%d", admin))
		for _, want := range []string{`webhook_gateway hook \\\"github\\\"`, "auth #1 (github): secret #1 {env.CLI_RELOAD_ONLY} is empty", "read by the running server"} {
			if code == 0 || !strings.Contains(errOut, want) {
				t.Errorf("reload: exit %d, want %q in\n%s", code, want, errOut)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		for _, sub := range []string{"send", "reshape", "events", "replay"} {
			out, _, code := cli(t, bin, nil, nil, "webhook-gateway", sub, "--help")
			if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "caddy webhook-gateway "+sub) {
				t.Errorf("%s --help: exit %d\n%s", sub, code, out)
			}
		}
		out, _, _ := cli(t, bin, nil, nil, "webhook-gateway", "send", "--help")
		if !strings.Contains(out, "discord (") || !strings.Contains(out, "github") {
			t.Errorf("send --help does not list the presets:\n%s", out)
		}
	})
}
