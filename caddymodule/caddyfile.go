package caddymodule

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-webhooks/gateway/verify"
)

func init() {
	httpcaddyfile.RegisterDirective("webhook_gateway", parseDirective)
	// After basic_auth is before every directive that answers a request
	// (respond, reverse_proxy, php_fastcgi, file_server), so nothing can
	// answer ahead of the gate.
	httpcaddyfile.RegisterDirectiveOrder("webhook_gateway", httpcaddyfile.After, "basic_auth")
}

// parseDirective sets up the handler from Caddyfile tokens. It handles the
// matcher itself so that a path matcher can name the hook by default.
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	handler := new(Handler)
	return routeNamedByMatcher(h, handler, func(name string) {
		if handler.Name == "" {
			handler.Name = name
		}
	})
}

// routeNamedByMatcher reads a directive's matcher and block into handler
// and gives it the name a path matcher suggests ("" when none) before
// making its route.
func routeNamedByMatcher(h httpcaddyfile.Helper, handler interface {
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}, name func(string),
) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	name(nameFromMatcher(matcherSet))
	return h.NewRoute(matcherSet, handler), nil
}

// nameFromMatcher derives a hook name from a path matcher: "/hooks/github*"
// becomes "hooks/github".
func nameFromMatcher(set caddy.ModuleMap) string {
	raw, ok := set["path"]
	if !ok {
		return ""
	}
	var paths []string
	if json.Unmarshal(raw, &paths) != nil || len(paths) == 0 {
		return ""
	}
	return strings.Trim(paths[0], "/*")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax in
// the Handler type's documentation.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "auth", "forward", "publish":
		default:
			if seen[opt] {
				return d.Errf("option %s given twice", opt)
			}
		}
		seen[opt] = true

		switch opt {
		case "name":
			if err := oneArg(d, &h.Name); err != nil {
				return err
			}
		case "methods":
			h.Methods = d.RemainingArgs()
			if len(h.Methods) == 0 {
				return d.Errf("methods needs at least one method")
			}
			for i, m := range h.Methods {
				h.Methods[i] = strings.ToUpper(m)
			}
		case "max_size":
			if err := sizeArg(d, 1<<40, "", &h.MaxSize); err != nil {
				return err
			}
		case "content_type":
			h.ContentTypes = d.RemainingArgs()
			if len(h.ContentTypes) == 0 {
				return d.Errf("content_type needs at least one media type")
			}
			if _, err := parseMediaRanges(h.ContentTypes); err != nil {
				return d.Err(err.Error())
			}
		case "form_payload":
			if d.NextArg() {
				return d.Errf("form_payload takes no arguments")
			}
			h.FormPayload = true
		case "pass_credentials":
			if d.NextArg() {
				return d.Errf("pass_credentials takes no arguments")
			}
			h.PassCredentials = true
		case "auth":
			a, err := parseAuth(d)
			if err != nil {
				return err
			}
			h.Auth = append(h.Auth, a)
		case "id_from":
			if err := oneArg(d, &h.IDFrom); err != nil {
				return err
			}
		case "deduplicate":
			window := caddy.Duration(24 * time.Hour)
			if d.CountRemainingArgs() > 0 {
				if err := durationArg(d, &window); err != nil {
					return err
				}
			}
			h.Deduplicate = window
		case "reshape":
			r, err := parseReshape(d)
			if err != nil {
				return err
			}
			h.Reshape = r
		case "forward":
			f, err := parseForward(d)
			if err != nil {
				return err
			}
			h.Forward = append(h.Forward, f)
		case "publish":
			p, err := parsePublish(d)
			if err != nil {
				return err
			}
			h.Publish = append(h.Publish, p)
		case "mode":
			if err := oneArg(d, &h.Mode); err != nil {
				return err
			}
			switch h.Mode {
			case "sync", "async":
			default:
				return d.Errf("mode must be sync or async, not %q", h.Mode)
			}
		case "deadline":
			if err := durationArg(d, (*caddy.Duration)(&h.Deadline)); err != nil {
				return err
			}
		case "reply":
			r, err := parseReply(d)
			if err != nil {
				return err
			}
			h.Reply = r
		case "log", "log_body", "log_redact", "log_max":
			if err := h.parseRunLog(d, opt); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized webhook_gateway option %q", opt)
		}
	}
	return nil
}

// oneArg reads exactly one argument of the current option.
func oneArg(d *caddyfile.Dispenser, into *string) error {
	opt := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs one argument", opt)
	}
	*into = d.Val()
	if d.NextArg() {
		return d.Errf("%s takes one argument, got extra %q", opt, d.Val())
	}
	return nil
}

// sizeArg reads one size argument such as 1MB, from 1 byte to max;
// limits, when not empty, is said in the error. No size above 1TiB is
// read, whatever max.
func sizeArg(d *caddyfile.Dispenser, max uint64, limits string, into *int64) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	size, err := humanize.ParseBytes(s)
	if err != nil || size == 0 || size > max || size > 1<<40 {
		if limits != "" {
			return d.Errf("%s: invalid size %q (%s)", opt, s, limits)
		}
		return d.Errf("%s: invalid size %q", opt, s)
	}
	*into = int64(size)
	return nil
}

func durationArg(d *caddyfile.Dispenser, into *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s: invalid duration %q", opt, s)
	}
	*into = caddy.Duration(dur)
	return nil
}

func isPreset(name string) bool {
	return slices.Contains(verify.Presets(), name)
}

// parseAuth reads `auth <method> <args...> [{ ... }]`.
func parseAuth(d *caddyfile.Dispenser) (AuthConfig, error) {
	var a AuthConfig
	if !d.NextArg() {
		return a, d.Errf("auth needs a method: basic, api_key, hmac, issued or a preset such as github")
	}
	given := d.Val()
	a.Method = strings.ToLower(given)
	args := d.RemainingArgs()
	switch a.Method {
	case "basic":
		if len(args) != 2 {
			return a, d.Errf("auth basic needs a username and a password (or hash)")
		}
		a.Username, a.Password = args[0], args[1]
	case "issued":
		if len(args) != 3 {
			return a, d.Errf("auth issued needs an issuer, an api token template and a token template, e.g. auth issued github-hooks {path.1} {path.2}")
		}
		a.Issuer, a.APIToken, a.Token = args[0], args[1], args[2]
	case "api_key", "hmac":
		if len(args) == 0 {
			return a, d.Errf("auth %s needs at least one key or secret", a.Method)
		}
		a.Secrets = args
	default:
		if !isPreset(a.Method) {
			if near := verify.Closest(a.Method); near != "" {
				return a, d.Errf("auth: unknown method %q; did you mean %s?", given, near)
			}
			return a, d.Errf("auth: unknown method %q (want basic, api_key, hmac, issued or one of: %s)", given, strings.Join(verify.Presets(), ", "))
		}
		if len(args) == 0 {
			return a, d.Errf("auth %s needs at least one secret", a.Method)
		}
		a.Secrets = args
	}

	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		allowed := map[string][]string{
			"api_key": {"header", "query", "bearer"},
			"hmac":    {"header", "algorithm", "encoding", "prefix", "timestamp_header", "signed", "tolerance"},
			"basic":   {},
			"issued":  {},
		}[a.Method]
		if allowed == nil {
			allowed = []string{"tolerance"}
		}
		if !slices.Contains(allowed, opt) && (opt != "reject_duplicate_keys" || a.Method == "issued") {
			return a, d.Errf("auth %s: unrecognized option %q", a.Method, opt)
		}
		var err error
		switch opt {
		case "header":
			err = oneArg(d, &a.Header)
		case "query":
			err = oneArg(d, &a.Query)
		case "bearer":
			if d.NextArg() {
				return a, d.Errf("bearer takes no arguments")
			}
			a.Bearer = true
		case "algorithm":
			err = oneArg(d, &a.Algorithm)
		case "encoding":
			err = oneArg(d, &a.Encoding)
		case "prefix":
			err = oneArg(d, &a.Prefix)
		case "timestamp_header":
			err = oneArg(d, &a.TimestampHeader)
		case "signed":
			err = oneArg(d, &a.Signed)
		case "tolerance":
			err = durationArg(d, &a.Tolerance)
		case "reject_duplicate_keys":
			if d.NextArg() {
				return a, d.Errf("reject_duplicate_keys takes no arguments")
			}
			a.RejectDuplicateKeys = true
		}
		if err != nil {
			return a, err
		}
	}
	if a.Method == "api_key" && btoi(a.Header != "")+btoi(a.Query != "")+btoi(a.Bearer) > 1 {
		return a, d.Errf("auth api_key: choose one of header, query or bearer")
	}
	if a.Method == "hmac" && a.Header == "" {
		return a, d.Errf("auth hmac needs a header option naming the signature header")
	}
	return a, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseReshape reads `reshape [keep] { set ... ; delete ... }`.
func parseReshape(d *caddyfile.Dispenser) (*ReshapeConfig, error) {
	r := new(ReshapeConfig)
	if d.NextArg() {
		if d.Val() != "keep" {
			return nil, d.Errf("reshape: unexpected argument %q (only keep)", d.Val())
		}
		r.Keep = true
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "set":
			args := d.RemainingArgs()
			m := Mapping{}
			switch {
			case len(args) == 3 && args[2] == "required":
				m.Required = true
			case len(args) == 2:
			default:
				return nil, d.Errf("set needs a destination path and a value, then optionally required")
			}
			m.Set, m.Value = args[0], args[1]
			r.Mappings = append(r.Mappings, m)
		case "delete":
			var path string
			if err := oneArg(d, &path); err != nil {
				return nil, err
			}
			r.Mappings = append(r.Mappings, Mapping{Delete: path})
		default:
			return nil, d.Errf("reshape: unrecognized option %q (want set or delete)", d.Val())
		}
	}
	if len(r.Mappings) == 0 && !r.Keep {
		return nil, d.Errf("reshape needs at least one set or delete")
	}
	return r, nil
}

// parseForward reads `forward <url> { ... }`.
func parseForward(d *caddyfile.Dispenser) (ForwardConfig, error) {
	var f ForwardConfig
	if err := oneArg(d, &f.URL); err != nil {
		return f, err
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "header" && seen[opt] {
			return f, d.Errf("forward: option %s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "name":
			err = oneArg(d, &f.Name)
		case "method":
			err = oneArg(d, &f.Method)
			f.Method = strings.ToUpper(f.Method)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return f, d.Errf("header needs a name and a value")
			}
			if f.Headers == nil {
				f.Headers = map[string][]string{}
			}
			f.Headers[args[0]] = append(f.Headers[args[0]], args[1])
		case "timeout":
			err = durationArg(d, &f.Timeout)
		case "retries":
			f.Retries, err = retriesArg(d)
		case "backoff":
			f.BackoffBase, f.BackoffMax, err = backoffArgs(d)
		case "retry_on":
			f.RetryOn = d.RemainingArgs()
			if len(f.RetryOn) == 0 {
				return f, d.Errf("retry_on needs at least one status")
			}
		case "sign":
			f.Sign, err = parseSign(d)
		case "tls_insecure_skip_verify":
			if d.NextArg() {
				return f, d.Errf("tls_insecure_skip_verify takes no arguments")
			}
			f.TLSInsecureSkipVerify = true
		case "body":
			err = oneArg(d, &f.Body)
			if err == nil && f.Body != "reshaped" && f.Body != "original" {
				return f, d.Errf("body must be reshaped or original, not %q", f.Body)
			}
		default:
			return f, d.Errf("forward: unrecognized option %q", opt)
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// retriesArg reads `retries <n>`.
func retriesArg(d *caddyfile.Dispenser) (*int, error) {
	var s string
	if err := oneArg(d, &s); err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100 {
		return nil, d.Errf("retries: want a whole number from 0 to 100, not %q", s)
	}
	return &n, nil
}

// backoffArgs reads `backoff <base> <max>`.
func backoffArgs(d *caddyfile.Dispenser) (base, maxDelay caddy.Duration, err error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return 0, 0, d.Errf("backoff needs a base and a maximum duration")
	}
	b, err1 := caddy.ParseDuration(args[0])
	m, err2 := caddy.ParseDuration(args[1])
	if err1 != nil || err2 != nil || b <= 0 || m < b {
		return 0, 0, d.Errf("backoff: invalid durations %q %q (base > 0, max >= base)", args[0], args[1])
	}
	return caddy.Duration(b), caddy.Duration(m), nil
}

// parseSign reads `sign standard|github <secret>` or
// `sign hmac <secret> { header ..; algorithm ..; encoding ..; prefix .. }`.
func parseSign(d *caddyfile.Dispenser) (*SignConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Errf("sign needs a kind (standard, github or hmac) and a secret")
	}
	s := &SignConfig{Kind: args[0], Secret: args[1]}
	switch s.Kind {
	case "standard", "github", "hmac":
	default:
		return nil, d.Errf("sign: unknown kind %q (want standard, github or hmac)", s.Kind)
	}
	if s.Kind == "standard" && !strings.Contains(s.Secret, "{") && !validWhsec(s.Secret) {
		return nil, d.Errf("sign standard: the secret must be whsec_ followed by base64, as Standard Webhooks keys are written")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if s.Kind != "hmac" {
			return nil, d.Errf("sign %s takes no options", s.Kind)
		}
		var err error
		switch d.Val() {
		case "header":
			err = oneArg(d, &s.Header)
		case "algorithm":
			err = oneArg(d, &s.Algorithm)
		case "encoding":
			err = oneArg(d, &s.Encoding)
		case "prefix":
			err = oneArg(d, &s.Prefix)
		default:
			return nil, d.Errf("sign hmac: unrecognized option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if s.Kind == "hmac" && s.Header == "" {
		return nil, d.Errf("sign hmac needs a header option")
	}
	return s, nil
}
