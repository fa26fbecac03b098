package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestCaddyfileAdapt runs the golden files in testdata/caddyfile_adapt:
// a Caddyfile, a line of dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddytest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			caddyfileText, wantJSON, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("%s has no ---------- separator", f)
			}
			if !caddytest.CompareAdapt(t, f, caddyfileText, "caddyfile", strings.TrimSpace(wantJSON)) {
				t.Errorf("%s: adapted JSON differs", f)
			}
		})
	}
}

// TestUnmarshalCaddyfileErrors checks that each malformed option is refused
// with an error that names it.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, input, wantErr string
	}{
		{"argument on directive", `webhook_gateway extra`, "wrong argument count"},
		{"unknown option", "webhook_gateway {\n bogus 1\n}", `unrecognized webhook_gateway option "bogus"`},
		{"repeated option", "webhook_gateway {\n max_size 1KB\n max_size 2KB\n}", "max_size given twice"},
		{"bad size", "webhook_gateway {\n max_size lots\n}", `max_size: invalid size "lots"`},
		{"methods empty", "webhook_gateway {\n methods\n}", "methods needs at least one method"},
		{"content_type bad", "webhook_gateway {\n content_type json\n}", `invalid media type "json"`},
		{"form_payload arg", "webhook_gateway {\n form_payload yes\n}", "form_payload takes no arguments"},
		{"pass_credentials arg", "webhook_gateway {\n pass_credentials yes\n}", "pass_credentials takes no arguments"},
		{"pass_credentials twice", "webhook_gateway {\n pass_credentials\n pass_credentials\n}", "pass_credentials given twice"},
		{"auth no method", "webhook_gateway {\n auth\n}", "auth needs a method"},
		{"auth unknown", "webhook_gateway {\n auth nosuch s\n}", `auth: unknown method "nosuch"`},
		{"auth preset no secret", "webhook_gateway {\n auth github\n}", "auth github needs at least one secret"},
		{"auth basic args", "webhook_gateway {\n auth basic user\n}", "auth basic needs a username and a password"},
		{"auth hmac no header", "webhook_gateway {\n auth hmac s\n}", "auth hmac needs a header option"},
		{"auth hmac unknown opt", "webhook_gateway {\n auth hmac s {\n  header X\n  colour red\n }\n}", `auth hmac: unrecognized option "colour"`},
		{"auth preset bad opt", "webhook_gateway {\n auth github s {\n  header X\n }\n}", `auth github: unrecognized option "header"`},
		{"api_key two places", "webhook_gateway {\n auth api_key k {\n  header X\n  bearer\n }\n}", "choose one of header, query or bearer"},
		{"reject_duplicate_keys arg", "webhook_gateway {\n auth adyen 00 {\n  reject_duplicate_keys yes\n }\n}", "reject_duplicate_keys takes no arguments"},
		{"tolerance bad", "webhook_gateway {\n auth stripe s {\n  tolerance soon\n }\n}", `tolerance: invalid duration "soon"`},
		{"id_from two", "webhook_gateway {\n id_from a b\n}", `id_from takes one argument, got extra "b"`},
		{"reshape bad arg", "webhook_gateway {\n reshape drop {\n }\n}", `reshape: unexpected argument "drop"`},
		{"reshape empty", "webhook_gateway {\n reshape {\n }\n}", "reshape needs at least one set or delete"},
		{"set short", "webhook_gateway {\n reshape {\n  set a\n }\n}", "set needs a destination path and a value"},
		{"set bad flag", "webhook_gateway {\n reshape {\n  set a b optional\n }\n}", "set needs a destination path and a value"},
		{"reshape unknown", "webhook_gateway {\n reshape {\n  rename a b\n }\n}", `reshape: unrecognized option "rename"`},
		{"forward no url", "webhook_gateway {\n forward\n}", "forward needs one argument"},
		{"forward unknown", "webhook_gateway {\n forward http://x {\n  proxy y\n }\n}", `forward: unrecognized option "proxy"`},
		{"forward retries", "webhook_gateway {\n forward http://x {\n  retries many\n }\n}", `retries: want a whole number from 0 to 100, not "many"`},
		{"forward backoff", "webhook_gateway {\n forward http://x {\n  backoff 5s 1s\n }\n}", "backoff: invalid durations"},
		{"forward header", "webhook_gateway {\n forward http://x {\n  header X\n }\n}", "header needs a name and a value"},
		{"forward body", "webhook_gateway {\n forward http://x {\n  body both\n }\n}", `body must be reshaped or original, not "both"`},
		{"forward repeat", "webhook_gateway {\n forward http://x {\n  timeout 1s\n  timeout 2s\n }\n}", "forward: option timeout given twice"},
		{"sign kind", "webhook_gateway {\n forward http://x {\n  sign rot13 s\n }\n}", `sign: unknown kind "rot13"`},
		{"sign hmac header", "webhook_gateway {\n forward http://x {\n  sign hmac s\n }\n}", "sign hmac needs a header option"},
		{"publish no url", "webhook_gateway {\n publish\n}", "publish needs one argument"},
		{"publish scheme", "webhook_gateway {\n publish kafka://k {\n  subject a\n }\n}", "the URL scheme must be amqp, amqps, nats or tls"},
		{"publish amqp no key", "webhook_gateway {\n publish amqp://r/ {\n  exchange e\n }\n}", "publish amqp needs a routing_key"},
		{"publish amqp subject", "webhook_gateway {\n publish amqp://r/ {\n  routing_key k\n  subject s\n }\n}", "subject is for NATS"},
		{"publish nats no subject", "webhook_gateway {\n publish nats://n {\n }\n}", "publish nats needs a subject"},
		{"publish nats exchange", "webhook_gateway {\n publish nats://n {\n  subject s\n  exchange e\n }\n}", "are for RabbitMQ"},
		{"publish persistent", "webhook_gateway {\n publish amqp://r/ {\n  routing_key k\n  persistent yes\n }\n}", `persistent must be on or off, not "yes"`},
		{"publish unknown", "webhook_gateway {\n publish amqp://r/ {\n  routing_key k\n  queue q\n }\n}", `publish: unrecognized option "queue"`},
		{"publish repeat", "webhook_gateway {\n publish amqp://r/ {\n  routing_key k\n  routing_key j\n }\n}", "publish: option routing_key given twice"},
		{"publish retries", "webhook_gateway {\n publish amqp://r/ {\n  routing_key k\n  retries -1\n }\n}", "retries: want a whole number"},
		{"mode bad", "webhook_gateway {\n mode later\n}", `mode must be sync or async, not "later"`},
		{"deduplicate bad", "webhook_gateway {\n deduplicate forever\n}", `deduplicate: invalid duration "forever"`},
		{"deadline bad", "webhook_gateway {\n deadline -1s\n}", `deadline: invalid duration "-1s"`},
		{"log bad", "webhook_gateway {\n log loud\n}", `log must be off, meta or full, not "loud"`},
		{"log twice", "webhook_gateway {\n log off\n log full\n}", "log given twice"},
		{"log_body bad", "webhook_gateway {\n log_body lots\n}", `log_body: invalid size "lots"`},
		{"log_body zero", "webhook_gateway {\n log_body 0\n}", `log_body: invalid size "0"`},
		{"log_redact empty", "webhook_gateway {\n log_redact\n}", "log_redact needs at least one header name"},
		{"log_max zero", "webhook_gateway {\n log_max 0\n}", `log_max: want a whole number above 0, not "0"`},
		{"log_max word", "webhook_gateway {\n log_max many\n}", `log_max: want a whole number above 0, not "many"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tc.input)
			err := new(Handler).UnmarshalCaddyfile(d)
			if err == nil {
				t.Fatalf("accepted %q", tc.input)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}
