package caddymodule

import (
	"embed"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(RunLogPage{})
}

// uiFiles is the run log page: plain HTML, CSS and JavaScript, no build
// step. The script reads the admin API of AdminAPI from the page's own
// origin and inserts what it reads as text, never as HTML: payloads and
// headers come from senders.
//
//go:embed ui/index.html ui/app.css ui/app.js
var uiFiles embed.FS

// uiPrefix is where the page lives on the admin endpoint.
const uiPrefix = "/webhook_gateway/ui/"

// uiContentTypes are the page's files and their media types; nothing else
// under uiPrefix is served.
var uiContentTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"app.css":    "text/css; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
}

// uiCSP allows the page its own scripts, styles and API calls and nothing
// else: no inline script, no other origin, no framing.
const uiCSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// RunLogPage serves the run log page on Caddy's admin endpoint:
//
//	GET /webhook_gateway/ui/          the page
//	GET /webhook_gateway/ui/app.css   its style
//	GET /webhook_gateway/ui/app.js    its script
//
// The page lists the hooks with their counts, the run log with filters
// (refreshed every 2 seconds while the tab is visible), one record with
// its headers, payload, attempts and a Replay button. It is a separate
// admin module so that the page and the JSON API stay apart.
type RunLogPage struct{}

// CaddyModule returns the Caddy module information.
func (RunLogPage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_gateway_ui",
		New: func() caddy.Module { return new(RunLogPage) },
	}
}

// Routes returns the page's admin route.
func (RunLogPage) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: uiPrefix, Handler: caddy.AdminHandlerFunc(serveRunLogPage)},
	}
}

func serveRunLogPage(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	name := strings.TrimPrefix(r.URL.Path, uiPrefix)
	if name == "" {
		name = "index.html"
	}
	ctype, ok := uiContentTypes[name]
	if !ok {
		return apiErr(http.StatusNotFound, "no such file")
	}
	b, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	// The admin endpoint checks the Origin or, failing that, the Referer of
	// every request a browser makes; same-origin keeps the Referer on the
	// page's own requests and sends it nowhere else.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b) //nolint:gosec // one of the embedded files named in uiContentTypes, not request data
	}
	return nil
}

// Interface guards
var _ caddy.AdminRouter = (*RunLogPage)(nil)
