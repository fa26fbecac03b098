package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Chromium on PATH. Without it the page test skips,
// except in CI, where a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium or chromium-browser on PATH: install the Debian package chromium (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago:
// Caddy's admin endpoint checks the Host and Origin of browser requests
// against its listen address, so the page test runs it on a real one, not
// on an inherited descriptor.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// githubSignature is X-Hub-Signature-256 as GitHub documents it: "sha256="
// and the hex HMAC-SHA256 of the body with the webhook secret.
func githubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// flakyUpstream answers 503 until healthy is set, then 200.
type flakyUpstream struct {
	healthy atomic.Bool
	mu      sync.Mutex
	got     []string // paths of the requests received
}

func (u *flakyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	u.mu.Lock()
	u.got = append(u.got, r.URL.Path)
	u.mu.Unlock()
	if r.URL.Path == "/flaky" && !u.healthy.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// adminGet reads a JSON answer of the admin endpoint into v.
func adminGet(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestRunLogPage drives the run log page in a real headless Chromium
// against the built Caddy: webhooks accepted, rejected (bad signature) and
// failing upstream are listed with their statuses, a new one appears
// without a reload, the status and text filters narrow the list, a record
// shows its payload and attempts, Replay of a dead record adds an
// attempt once the upstream is back, Replay of a rejected one shows the
// 409 reason, and a hook's "Replay dead" delivers its dead records. What senders control (payload, headers) stays text.
// A screenshot of each step is written under the test's temp dir; set
// RUN_LOG_SCREENSHOTS to a directory to keep them.
func TestRunLogPage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy and runs Chromium")
	}
	browser := chromiumPath(t)
	dir := t.TempDir()
	shots := filepath.Join(dir, "screenshots")
	if d := os.Getenv("RUN_LOG_SCREENSHOTS"); d != "" {
		shots = d
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildCaddy(t, dir)

	up := &flakyUpstream{}
	upstream := httptest.NewServer(up)
	defer upstream.Close()

	const (
		ghSecret = "It's a Secret to Everybody"
		apiKey   = "k-orders-7f3a9c2e"
	)
	lns := listenLoopback(t, 1)
	adminPort := freeLoopbackPort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	config := filepath.Join(dir, "Caddyfile")
	// origins "": a browser sends neither Origin nor Referer when the
	// page's address is typed in; the README says the same.
	caddyfile := fmt.Sprintf(`{
	admin %[1]s {
		origins %[1]s localhost:%[2]d ""
	}
	auto_https off
	persist_config off
	webhook_gateway {
		store pebble %[3]s
	}
}

http://127.0.0.1:%[4]d {
	bind fd/3
	webhook_gateway /hooks/github {
		auth github "%[5]s"
		forward %[6]s/ok {
			name ci
		}
	}
	webhook_gateway /hooks/orders {
		auth api_key %[7]s
		id_from {header.X-Request-Id}
		reshape {
			set order_id {json.order} required
			set source "shop"
		}
		mode async
		forward %[6]s/flaky {
			name shop
			retries 1
			backoff 100ms 200ms
		}
	}
}
`, admin, adminPort, filepath.Join(dir, "events"), lns.port(0), ghSecret, upstream.URL, apiKey)
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := runCaddyOn(t, bin, dir, config, lns)
	defer proc.stop(t)
	if !waitDial(admin, 30*time.Second) {
		t.Fatalf("admin endpoint %s not listening", admin)
	}
	site := fmt.Sprintf("http://127.0.0.1:%d", lns.port(0))
	pageURL := "http://" + admin + "/webhook_gateway/ui/"

	send := func(path string, body string, h http.Header, want int) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, site+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d %s, want %d", path, resp.StatusCode, b, want)
		}
	}
	github := func(id, body, signature string, want int) {
		t.Helper()
		h := http.Header{}
		h.Set("X-GitHub-Event", "issues")
		h.Set("X-GitHub-Delivery", id)
		h.Set("X-Hub-Signature-256", signature)
		h.Set("X-Note", "<b>bold</b>")
		send("/hooks/github", body, h, want)
	}

	// Sender-controlled text that would run or render if it were HTML,
	// and an id a double cannot hold.
	const accepted = `{"action":"opened","issue":{"id":1234567890123456789,"title":"<img src=x onerror=\"document.title='pwned'\">"}}`
	github("gh-accepted-1", accepted, githubSignature(ghSecret, []byte(accepted)), http.StatusOK)
	const forged = `{"action":"deleted"}`
	github("gh-forged-1", forged, githubSignature("not the secret", []byte(forged)), http.StatusUnauthorized)
	const order = `{"order":"ord-7731","note":"needle-5e1f in the payload"}`
	send("/hooks/orders", order, http.Header{"X-Api-Key": {apiKey}, "X-Request-Id": {"order-7731"}}, http.StatusAccepted)

	// The page and its assets, as a plain HTTP client sees them.
	for _, name := range []string{"", "app.css", "app.js"} {
		resp, err := http.Get(pageURL + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s%s: %d", pageURL, name, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s%s: Content-Security-Policy %q", pageURL, name, csp)
		}
		if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("GET %s%s: X-Content-Type-Options %q", pageURL, name, v)
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // tests may run as root in a container
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()

	// Every console message: an uncaught exception or a Content Security
	// Policy violation fails the test.
	var consoleMu sync.Mutex
	var console []chromedp.ConsoleMessage
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			consoleMu.Lock()
			console = append(console, m)
			consoleMu.Unlock()
		}
	}()
	defer func() {
		consoleMu.Lock()
		defer consoleMu.Unlock()
		for _, m := range console {
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
				t.Errorf("browser console: %s (%s:%d)", m, m.URL, m.Line)
			}
		}
	}()

	step := 0
	shot := func(name string) {
		t.Helper()
		step++
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	// wait polls a JavaScript expression until it is truthy and returns
	// its value as text; on timeout it fails with the page's text.
	wait := func(what, expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const v = (`+expr+`); return v ? String(v) : ''; })()`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
		if err != nil {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, body)
		}
		return v
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	rowSel := func(id string) string { return `#events tbody tr[data-id="` + id + `"]` }
	row := func(id, status string) string {
		return `document.querySelector('` + rowSel(id) + `[data-status="` + status + `"]')`
	}

	// 1. The list: each webhook with its status; the hooks with counts.
	do("open the page", chromedp.Navigate(pageURL))
	wait("the accepted webhook delivered", row("gh-accepted-1", "delivered"))
	wait("the forged webhook rejected", row("gh-forged-1", "rejected"))
	wait("the order dead after its retries", row("order-7731", "dead"))
	if action := wait("the order's action", row("order-7731", "dead")+`.children[6].textContent`); action != "shop" {
		t.Errorf("the order's action shown as %q, want its name shop", action)
	}
	// the verifier's reason, as the admin API gives it
	var forgedRecord struct {
		Events []struct {
			Reason string `json:"reason"`
		} `json:"events"`
	}
	adminGet(t, "http://"+admin+"/webhook_gateway/event?id=gh-forged-1", &forgedRecord)
	if len(forgedRecord.Events) != 1 || forgedRecord.Events[0].Reason == "" {
		t.Fatalf("admin API: the forged webhook's record %+v, want one with a reason", forgedRecord)
	}
	forgedReason := forgedRecord.Events[0].Reason
	if reason := wait("the rejection reason", row("gh-forged-1", "rejected")+`.querySelector('td.reason').textContent`); reason != forgedReason {
		t.Errorf("rejection reason shown %q, want %q", reason, forgedReason)
	}
	counts := wait("the hook counts", `(() => { const t = document.querySelector('#hooks tr[data-hook="hooks/github"]'); `+
		`return t && t.textContent.includes('delivered 1') && t.textContent.includes('rejected 1') && t.textContent; })()`)
	t.Logf("hooks/github counts: %s", counts)
	if css := wait("the stylesheet applied", `getComputedStyle(document.querySelector('header.top')).display`); css != "flex" {
		t.Errorf("header display %q: app.css not applied", css)
	}
	shot("list")

	// 2. Live: a new webhook appears without a reload.
	do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__loadedOnce = true`))
	const second = `{"action":"closed","issue":{"id":7}}`
	github("gh-accepted-2", second, githubSignature(ghSecret, []byte(second)), http.StatusOK)
	wait("the new webhook listed live", row("gh-accepted-2", "delivered"))
	wait("its count", `document.querySelector('#hooks tr[data-hook="hooks/github"]')?.textContent.includes('delivered 2')`)
	if marked := wait("the same page", `window.__loadedOnce === true ? 'same' : 'reloaded'`); marked != "same" {
		t.Fatalf("the page reloaded to show a new record")
	}
	shot("live")

	// Hidden, the page asks nothing; visible again, it goes on.
	do("hide the tab", chromedp.Evaluate[chromedp.Void](`(() => {
		window.__hidden = true;
		Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__hidden });
		const f = window.fetch;
		window.__fetches = 0;
		window.fetch = (...args) => { window.__fetches++; return f(...args); };
		document.dispatchEvent(new Event('visibilitychange'));
	})()`))
	wait("the paused label", `document.querySelector('#live').textContent.startsWith('paused')`)
	do("a few poll intervals", chromedp.Sleep(5*time.Second))
	if n := wait("the requests made while hidden", `String(window.__fetches)`); n != "0" {
		t.Errorf("the hidden page made %s requests", n)
	}
	do("show the tab", chromedp.Evaluate[chromedp.Void](`window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))`))
	wait("polling again", `window.__fetches > 0 && document.querySelector('#live').textContent.startsWith('live')`)

	// 3. Filter by status.
	do("filter rejected",
		chromedp.SetValue(`#filters select[name=status]`, "rejected"),
		chromedp.Click(`#filters button[type=submit]`))
	n := wait("only rejected records", `(() => { const rows = [...document.querySelectorAll('#events tbody tr')]; `+
		`return rows.length > 0 && rows.every(r => r.dataset.status === 'rejected') && !document.querySelector('`+rowSel("gh-accepted-1")+`') && rows.length; })()`)
	t.Logf("status=rejected: %s rows", n)
	shot("filter-status")

	// 4. Filter by text in the payload.
	do("filter by text",
		chromedp.SetValue(`#filters select[name=status]`, ""),
		chromedp.SetValue(`#filters input[name=q]`, "needle-5e1f"),
		chromedp.Click(`#filters button[type=submit]`))
	wait("only the order", `(() => { const rows = [...document.querySelectorAll('#events tbody tr')]; `+
		`return rows.length === 1 && rows[0].dataset.id === 'order-7731'; })()`)
	shot("filter-text")

	// A time range: received since an hour from now is nothing; since an
	// hour ago, everything. The inputs are in the browser's zone.
	since := func(offset string) {
		t.Helper()
		do("filter since now"+offset,
			chromedp.Click(`#clear`),
			chromedp.Evaluate[chromedp.Void](`(() => {
				const d = new Date(Date.now() `+offset+`), p = (n) => String(n).padStart(2, '0');
				document.querySelector('#filters input[name=since]').value =
					d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
			})()`),
			chromedp.Click(`#filters button[type=submit]`))
	}
	since("+ 3600e3")
	wait("nothing since an hour from now", `document.querySelectorAll('#events tbody tr').length === 0 && `+
		`document.querySelector('#events-note:not([hidden])')?.textContent === 'No records match these filters.'`)
	since("- 3600e3")
	wait("everything since an hour ago", `document.querySelectorAll('#events tbody tr').length === 4`)
	do("back to the text filter",
		chromedp.Click(`#clear`),
		chromedp.SetValue(`#filters input[name=q]`, "needle-5e1f"),
		chromedp.Click(`#filters button[type=submit]`))
	wait("only the order", `(() => { const rows = [...document.querySelectorAll('#events tbody tr')]; `+
		`return rows.length === 1 && rows[0].dataset.id === 'order-7731'; })()`)

	// 5. One record: payload pretty-printed, both attempts failed, no secret.
	do("open the order", chromedp.Click(rowSel("order-7731")))
	wait("the order's payload", `document.querySelector('#d-payload').textContent.includes('"note": "needle-5e1f in the payload"')`)
	wait("the reshaped body sent", `(() => { const s = document.querySelector('#d-sent-block:not([hidden]) #d-sent'); `+
		`return s && s.textContent.includes('"order_id": "ord-7731"') && s.textContent.includes('"source": "shop"'); })()`)
	wait("two failed attempts", `(() => { const a = [...document.querySelectorAll('#d-attempts tbody tr')]; `+
		`return a.length === 2 && a.every(r => r.dataset.status === '503'); })()`)
	if leaked := wait("the page text", `document.body.innerText`); strings.Contains(leaked, apiKey) {
		t.Errorf("the API key is shown on the page")
	}
	shot("record")

	// 6. Replay once the upstream is back: a third attempt, delivered.
	up.healthy.Store(true)
	do("replay", chromedp.Click(`#replay`))
	answer := wait("the replay answer", `document.querySelector('#replay-result:not([hidden])')?.textContent`)
	if !strings.HasPrefix(answer, "Replayed (202)") {
		t.Fatalf("replay answer %q", answer)
	}
	wait("the new attempt", `(() => { const a = [...document.querySelectorAll('#d-attempts tbody tr')]; `+
		`return a.length === 3 && a[2].dataset.status === '200'; })()`)
	wait("the order delivered in the list", `document.querySelector('#d-fields .badge')?.textContent === 'delivered'`)
	shot("replayed")

	// 7. Sender-controlled text stays text; a large id keeps its digits.
	do("open the accepted webhook",
		chromedp.Click(`#clear`),
		chromedp.WaitVisible(rowSel("gh-accepted-1")),
		chromedp.Click(rowSel("gh-accepted-1")))
	payload := wait("its payload", `(() => { const p = document.querySelector('#d-payload').textContent; return p.includes('opened') && p; })()`)
	if !strings.Contains(payload, `<img src=x onerror=\"document.title='pwned'\">`) {
		t.Errorf("payload shown as\n%s\nwant the title as sent, as text", payload)
	}
	if !strings.Contains(payload, "1234567890123456789") {
		t.Errorf("payload shown as\n%s\nwant the id 1234567890123456789 with all its digits", payload)
	}
	wait("the received headers", `[...document.querySelectorAll('#d-headers td')].some(td => td.textContent === '<b>bold</b>')`)
	if got := wait("no element from a payload", `String(document.querySelectorAll('#detail img, #detail b').length) + ' ' + document.title`); got != "0 webhook_gateway run log" {
		t.Errorf("elements from sender text, and the title: %q", got)
	}
	shot("payload-as-text")

	// 8. Replay of a rejected record: the 409 and its reason.
	do("open the forged webhook", chromedp.Click(rowSel("gh-forged-1")))
	if reason := wait("its reason", `document.querySelector('#d-fields dd.reason')?.textContent`); reason != forgedReason {
		t.Errorf("the record's reason shown %q, want %q", reason, forgedReason)
	}
	do("replay it", chromedp.Click(`#replay`))
	refused := wait("the refusal", `document.querySelector('#replay-result:not([hidden])')?.textContent`)
	if !strings.HasPrefix(refused, "Not replayed (409): ") || len(refused) <= len("Not replayed (409): ") {
		t.Errorf("replay of a rejected record answered %q, want the 409 with its reason", refused)
	}
	shot("replay-refused")

	// The whole log and the replayed order, as the README shows it.
	do("open the order again",
		chromedp.Click(`#clear`),
		chromedp.WaitVisible(rowSel("order-7731")),
		chromedp.Click(rowSel("order-7731")))
	wait("the order's attempts", `document.querySelectorAll('#d-attempts tbody tr').length === 3`)
	shot("overview")

	// 9. Replay every dead record of a hook from its row.
	up.healthy.Store(false)
	send("/hooks/orders", `{"order":"ord-7732"}`, http.Header{"X-Api-Key": {apiKey}, "X-Request-Id": {"order-7732"}}, http.StatusAccepted)
	wait("the second order dead", row("order-7732", "dead"))
	wait("the hook's Replay dead button", `document.querySelector('#hooks tr[data-hook="hooks/orders"] button.small')`)
	up.healthy.Store(true)
	do("replay the dead orders",
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(`#hooks tr[data-hook="hooks/orders"] button.small`))
	if note := wait("the answer", `document.querySelector('#notice:not([hidden])')?.textContent`); note != "Replayed (202): 1 dead record of hooks/orders queued again." {
		t.Errorf("replay of the dead orders answered %q", note)
	}
	wait("the second order delivered", row("order-7732", "delivered"))
	shot("replay-dead")

	// 10. Pages: 50 records, then "Load older" for the rest.
	for i := range 50 {
		body := fmt.Sprintf(`{"action":"labeled","n":%d}`, i)
		github(fmt.Sprintf("gh-bulk-%02d", i), body, githubSignature(ghSecret, []byte(body)), http.StatusOK)
	}
	do("clear the filters", chromedp.Click(`#clear`))
	wait("a first page of 50", `document.querySelectorAll('#events tbody tr').length === 50 && `+
		`document.querySelector('#more:not([hidden])') && !document.querySelector('`+rowSel("gh-accepted-1")+`')`)
	do("load older", chromedp.Click(`#more`))
	wait("all 55 records", `document.querySelectorAll('#events tbody tr').length === 55 && `+
		`document.querySelector('`+rowSel("gh-accepted-1")+`') && document.querySelector('#more[hidden]')`)
	shot("paged")

	up.mu.Lock()
	flaky := 0
	for _, p := range up.got {
		if p == "/flaky" {
			flaky++
		}
	}
	up.mu.Unlock()
	if flaky != 6 {
		t.Errorf("upstream got %d requests for the orders, want 6 (each: two failed, one replayed)", flaky)
	}
}
