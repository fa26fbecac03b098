package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestXcaddyDocumented runs the xcaddy command xcaddy.md gives for a
// checkout, with xcaddy itself fetched through the Go module proxy, and
// checks the binary and that no dependency of the build is older than in
// this repository's go.mod.
func TestXcaddyDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a whole Caddy binary with xcaddy")
	}
	checkout, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(checkout, "xcaddy.md"))
	if err != nil {
		t.Fatal(err)
	}
	// the first xcaddy command of the page: the one for a checkout
	m := regexp.MustCompile(`(?m)^xcaddy build (\S+) --with (github\.com/caddy-webhooks/gateway@v0\.0\.0)=\./$`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("xcaddy.md has no `xcaddy build <version> --with github.com/caddy-webhooks/gateway@v0.0.0=./` line")
	}
	caddyVersion, with := string(m[1]), string(m[2])
	if want := requiredVersion(t, filepath.Join(checkout, "go.mod"), "github.com/caddyserver/caddy/v2"); caddyVersion != want {
		t.Errorf("xcaddy.md builds Caddy %s, go.mod requires %s", caddyVersion, want)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCommand(t), "run", "github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5",
		"build", caddyVersion, "--output", bin, "--with", with+"=./")
	cmd.Dir = checkout // "from the checkout's directory", as documented
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "XCADDY_SKIP_CLEANUP=1", "TMPDIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xcaddy: %v\n%s", err, out)
	}
	if got, err := exec.Command(bin, "list-modules").CombinedOutput(); err != nil || !strings.Contains(string(got), "http.handlers.webhook_gateway") {
		t.Fatalf("list-modules: %v\n%s", err, got)
	}
	if got, err := exec.Command(bin, "webhook-gateway", "send", "--help").CombinedOutput(); err != nil || !strings.Contains(string(got), "--preset") {
		t.Fatalf("webhook-gateway send --help: %v\n%s", err, got)
	}

	// the build environment xcaddy left: every dependency at least as new
	// as this repository's go.mod says
	envs, _ := filepath.Glob(filepath.Join(dir, "buildenv_*", "go.mod"))
	if len(envs) != 1 {
		t.Fatalf("xcaddy's build environment not found (%v)", envs)
	}
	ours := modVersions(t, filepath.Join(checkout, "go.mod"))
	built := modVersions(t, envs[0])
	for mod, v := range ours {
		if b, ok := built[mod]; ok && olderVersion(b, v) {
			t.Errorf("%s: xcaddy built with %s, older than go.mod's %s", mod, b, v)
		}
	}
	if built["golang.org/x/crypto"] != ours["golang.org/x/crypto"] {
		t.Logf("x/crypto: go.mod %s, xcaddy %s", ours["golang.org/x/crypto"], built["golang.org/x/crypto"])
	}
}

// modVersions reads the require lines of a go.mod.
func modVersions(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vs := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && strings.Contains(f[0], ".") && strings.HasPrefix(f[1], "v") {
			vs[f[0]] = f[1]
		}
	}
	return vs
}

// olderVersion reports whether version a is older than b: release numbers
// compared as numbers, then the rest (pre-release, pseudo-version) as text.
func olderVersion(a, b string) bool {
	na, ra := splitVersion(a)
	nb, rb := splitVersion(b)
	for i := range na {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	return ra < rb
}

func splitVersion(v string) ([3]int, string) {
	var n [3]int
	core, rest, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	core, _, _ = strings.Cut(core, "+")
	for i, part := range strings.SplitN(core, ".", 3) {
		n[i], _ = strconv.Atoi(part)
	}
	return n, rest
}
