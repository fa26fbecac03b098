package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	dto "github.com/prometheus/client_model/go"
)

// benchEvent builds a GitHub-like push event of about size bytes.
func benchEvent(size int) []byte {
	head := `{"ref":"refs/heads/main","before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",` +
		`"repository":{"id":1296269,"full_name":"octocat/Hello-World","private":false,"owner":{"login":"octocat","id":1}},` +
		`"pusher":{"name":"octocat","email":"octocat@github.com"},"sender":{"login":"octocat","id":1,"site_admin":false},` +
		`"head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Update README","timestamp":"2026-11-23T10:00:00Z"},"padding":"`
	pad := size - len(head) - 2
	if pad < 0 {
		pad = 0
	}
	return []byte(head + strings.Repeat("x", pad) + `"}`)
}

func benchSign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// tenMappings is the reshape of the performance budget.
var tenMappings = []Mapping{
	{Set: "ref", Value: "{json.ref}"},
	{Set: "after", Value: "{json.after}"},
	{Set: "repo.name", Value: "{json.repository.full_name}", Required: true},
	{Set: "repo.id", Value: "{json.repository.id}"},
	{Set: "repo.private", Value: "{json.repository.private}"},
	{Set: "owner", Value: "{json.repository.owner}"},
	{Set: "pusher", Value: "{json.pusher.name}"},
	{Set: "commit.id", Value: "{json.head_commit.id}"},
	{Set: "commit.message", Value: "{json.head_commit.message}"},
	{Set: "summary", Value: "{json.pusher.name} pushed to {json.ref}"},
}

func provisionBench(b *testing.B, h *Handler) {
	b.Helper()
	// a context with a config, as Caddy provisions handlers (they find the
	// webhook_gateway app through it)
	ctx, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = h.Cleanup()
		if h.app != nil {
			_ = h.app.Cleanup() // releases the event store a logging hook opened
		}
	})
}

type discardNext struct{ n int }

func (d *discardNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	d.n += int(r.ContentLength)
	return nil
}

// BenchmarkInbound measures the whole inbound pipeline in gate mode:
// method, content type, bounded read, GitHub HMAC, JSON check and ten
// mappings, next to raw HMAC-SHA256 over the same bytes.
func BenchmarkInbound(b *testing.B) {
	const secret = "bench-secret"
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		body := benchEvent(size)
		sig := benchSign(secret, body)
		name := fmt.Sprintf("%dKiB", size>>10)

		b.Run("RawHMACSHA256/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			key := []byte(secret)
			for b.Loop() {
				m := hmac.New(sha256.New, key)
				m.Write(body)
				_ = m.Sum(nil)
			}
		})

		for _, withReshape := range []bool{false, true} {
			h := &Handler{
				MaxSize: 2 << 20,
				Auth:    []AuthConfig{{Method: "github", Secrets: []string{secret}}},
			}
			label := "Gate/"
			if withReshape {
				h.Reshape = &ReshapeConfig{Mappings: tenMappings}
				label = "Gate10Mappings/"
			}
			provisionBench(b, h)
			next := &discardNext{}
			b.Run(label+name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				rd := bytes.NewReader(body)
				for b.Loop() {
					rd.Reset(body)
					req := httptest.NewRequest(http.MethodPost, "/hook", rd)
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Hub-Signature-256", sig)
					w := httptest.NewRecorder()
					repl := caddy.NewReplacer()
					req = caddyhttp.PrepareRequest(req, repl, w, nil)
					if err := h.ServeHTTP(w, req, next); err != nil || w.Code != http.StatusOK {
						b.Fatalf("status %d err %v: %s", w.Code, err, w.Body)
					}
				}
			})
		}
	}
}

// BenchmarkPipeline measures the inbound pipeline of the performance
// budget on its own: signature check (GitHub HMAC), JSON check and ten
// mappings over a received body, without the HTTP plumbing around it;
// raw HMAC-SHA256 over the same bytes is the floor.
func BenchmarkPipeline(b *testing.B) {
	const secret = "bench-secret"
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		body := benchEvent(size)
		h := &Handler{
			MaxSize: 2 << 20,
			Auth:    []AuthConfig{{Method: "github", Secrets: []string{secret}}},
			Reshape: &ReshapeConfig{Mappings: tenMappings},
		}
		provisionBench(b, h)
		req := httptest.NewRequest(http.MethodPost, "/hook", nil)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", benchSign(secret, body))
		repl := caddy.NewReplacer()
		b.Run(fmt.Sprintf("VerifyJSON10Mappings/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.authenticate(req, body); err != nil {
					b.Fatal(err)
				}
				if err := checkJSON(body); err != nil {
					b.Fatal(err)
				}
				if _, err := h.program.Apply(body, repl.Get); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRunLog is the run log's cost on a gate hook and on a sync one
// forwarding to a loopback upstream (GitHub HMAC, ten mappings, 1 KiB):
// log off against log full, whose records the background writer stores
// in an event store in a temporary directory. Run it with -cpu 1, so that
// the writer's work is inside the measured time:
//
//	go test -run '^$' -bench RunLog -cpu 1 ./caddymodule/
//
// dropped/op is the share of records the writer dropped (under overload,
// as it does in Caddy): work not measured.
func BenchmarkRunLog(b *testing.B) {
	const secret = "bench-secret"
	b.Setenv("XDG_DATA_HOME", b.TempDir()) // where the event store is opened
	body := benchEvent(1 << 10)
	sig := benchSign(secret, body)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer upstream.Close()
	for _, mode := range []string{"gate", "sync"} {
		for _, level := range []string{"off", "full"} {
			h := &Handler{
				Name:    mode + "-" + level,
				MaxSize: 2 << 20,
				Auth:    []AuthConfig{{Method: "github", Secrets: []string{secret}}},
				Reshape: &ReshapeConfig{Mappings: tenMappings},
				Log:     level,
			}
			if mode == "sync" {
				h.Forward = []ForwardConfig{{URL: upstream.URL + "/in"}}
			}
			provisionBench(b, h)
			benchRunLog(b, h, mode+"/log_"+level, body, sig)
		}
	}
}

func benchRunLog(b *testing.B, h *Handler, name string, body []byte, sig string) {
	next := &discardNext{}
	if h.app != nil {
		// the run log's writer, as Caddy starts it
		if err := h.app.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			if err := h.app.Stop(); err != nil {
				b.Fatal(err)
			}
		}()
	}
	b.Run(name, func(b *testing.B) {
		dropped := droppedRecords(b, h.name)
		b.ReportAllocs()
		rd := bytes.NewReader(body)
		for i := 0; b.Loop(); i++ {
			rd.Reset(body)
			req := httptest.NewRequest(http.MethodPost, "/hook", rd)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", sig)
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("72d3162e-cc78-11e3-81ab-%012d", i))
			req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
			w := httptest.NewRecorder()
			repl := caddy.NewReplacer()
			req = caddyhttp.PrepareRequest(req, repl, w, nil)
			if err := h.ServeHTTP(w, req, next); err != nil || w.Code != http.StatusOK {
				b.Fatalf("status %d err %v: %s", w.Code, err, w.Body)
			}
		}
		b.ReportMetric((droppedRecords(b, h.name)-dropped)/float64(b.N), "dropped/op")
	})
}

// droppedRecords is the run log's dropped-records counter of hook.
func droppedRecords(b *testing.B, hook string) float64 {
	var m dto.Metric
	if err := collectors().logDropped.WithLabelValues(hook).Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
