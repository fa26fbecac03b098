package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestXcaddyBuild builds Caddy the way `xcaddy build --with
// github.com/caddy-webhooks/gateway=<checkout>` does: a fresh main module
// outside the repository that blank-imports the module root, with a
// replace pointing at this checkout. The binary must list the module and
// adapt a Caddyfile that uses the directive.
func TestXcaddyBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a whole Caddy binary")
	}
	checkout, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goBin := goCommand(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	caddyVersion := requiredVersion(t, filepath.Join(checkout, "go.mod"), "github.com/caddyserver/caddy/v2")
	// xcaddy's generated main.go
	mainGo := `package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/caddy-webhooks/gateway"
)

func main() {
	caddycmd.Main()
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644); err != nil {
		t.Fatal(err)
	}
	run(goBin, "mod", "init", "caddy")
	run(goBin, "mod", "edit",
		"-require=github.com/caddyserver/caddy/v2@"+caddyVersion,
		"-require=github.com/caddy-webhooks/gateway@v0.0.0",
		"-replace=github.com/caddy-webhooks/gateway="+checkout)
	// the checkout's go.sum holds the checksums of the shared dependencies
	sum, err := os.ReadFile(filepath.Join(checkout, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	run(goBin, "mod", "tidy")
	run(goBin, "build", "-o", "caddy", ".")

	bin := filepath.Join(dir, "caddy")
	if out := run(bin, "list-modules"); !strings.Contains(out, "http.handlers.webhook_gateway") || !strings.Contains(out, "admin.api.webhook_gateway") {
		t.Fatalf("list-modules does not show the gateway modules:\n%s", out)
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(":8080 {\n\twebhook_gateway {\n\t\tauth github {env.SECRET}\n\t}\n\trespond ok\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(bin, "adapt", "--config", caddyfile); !strings.Contains(out, `"handler":"webhook_gateway"`) {
		t.Fatalf("adapt did not produce the handler:\n%s", out)
	}
}

// requiredVersion reads a module's version from a go.mod require line.
func requiredVersion(t *testing.T, goMod, module string) string {
	t.Helper()
	data, err := os.ReadFile(goMod)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(fields) >= 2 && fields[0] == module {
			return fields[1]
		}
	}
	t.Fatalf("%s not required in %s", module, goMod)
	return ""
}

// goCommand is the go command that runs this test: go test puts its own
// $GOROOT/bin first on the test's PATH.
func goCommand(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	return p
}
