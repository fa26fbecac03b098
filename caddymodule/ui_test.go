package caddymodule_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestRunLogPageFiles serves the page and its assets from the admin
// endpoint with their types and security headers, and nothing else under
// /webhook_gateway/ui/. The page in a browser: caddy/ui_test.go.
func TestRunLogPageFiles(t *testing.T) {
	startCaddy(t, `
http://localhost:9080 {
	webhook_gateway /hooks {
		auth api_key k1
	}
}
`)
	for path, ctype := range map[string]string{
		"/webhook_gateway/ui/":        "text/html; charset=utf-8",
		"/webhook_gateway/ui/app.css": "text/css; charset=utf-8",
		"/webhook_gateway/ui/app.js":  "text/javascript; charset=utf-8",
	} {
		resp, err := http.Get(adminURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
		for name, want := range map[string]string{
			"Content-Type":            ctype,
			"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, name, got, want)
			}
		}
	}

	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/webhook_gateway/ui/index.htm", http.StatusNotFound},
		{http.MethodGet, "/webhook_gateway/ui/../admin.go", http.StatusNotFound},
		{http.MethodGet, "/webhook_gateway/ui/ui.go", http.StatusNotFound},
		{http.MethodPost, "/webhook_gateway/ui/", http.StatusMethodNotAllowed},
		{http.MethodHead, "/webhook_gateway/ui/app.js", http.StatusOK},
	} {
		req, err := http.NewRequest(c.method, adminURL()+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// TestRunLogPageSources keeps the page self-contained and its script
// away from HTML parsing: every file the page names is one it is served
// with, no other origin is named, and the script never hands text to the
// HTML parser.
func TestRunLogPageSources(t *testing.T) {
	page, err := os.ReadFile("ui/index.html")
	if err != nil {
		t.Fatal(err)
	}
	page = regexp.MustCompile(`(?s)<!--.*?-->`).ReplaceAll(page, nil) // comments may name tags
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html names %d files, want its stylesheet and script", len(refs))
	}
	for _, m := range refs {
		switch m[1] {
		case "app.css", "app.js", "data:,":
		default:
			t.Errorf("index.html names %q, not one of the embedded files", m[1])
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(string(page), -1) {
		if !strings.Contains(tag, ` src="`) {
			t.Errorf("index.html has an inline script (%s), which its Content-Security-Policy refuses", tag)
		}
	}
	if regexp.MustCompile(`<style|\sstyle="|\son[a-z]+="`).Match(page) {
		t.Error("index.html has an inline style or event handler, which its Content-Security-Policy refuses")
	}
	script, err := os.ReadFile("ui/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"} {
		if strings.Contains(string(script), sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}
