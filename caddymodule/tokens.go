package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-webhooks/gateway/queue"
)

func init() {
	caddy.RegisterModule(TokensHandler{})
	httpcaddyfile.RegisterDirective("webhook_gateway_tokens", parseTokensDirective)
	// after every directive that decides who may call it or sets the
	// tenant (basic_auth, forward_auth, request_header), and before the
	// routing directives (handle, route), so a webhook_gateway_tokens
	// beside a `handle /wh/*` is reached for its own paths
	httpcaddyfile.RegisterDirectiveOrder("webhook_gateway_tokens", httpcaddyfile.Before, "invoke")
}

// Limits of the management API.
const (
	// maxTokensBody bounds the body of a POST.
	maxTokensBody = 64 << 10
	// maxNameLength bounds datasource and event.
	maxNameLength = 100
)

// hookName is what datasource and event may hold: they become parts of
// routing keys and subjects (event.<tenant>.<datasource>.<event>), so no
// dots, wildcards or spaces.
var hookName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// TokensHandler is the management API of hook URLs issued at run time
// (http.handlers.webhook_gateway_tokens). Tenants create, list, read,
// validate and delete their hooks; `auth issued` in a webhook_gateway
// handler then accepts the URLs. Who may call it is decided by what runs
// before it (basic_auth, forward_auth, a webhook_gateway api_key gate);
// the tenant is read from a placeholder that handler set.
//
// Requests, relative to the collection path (see Prefix):
//
//	POST {"datasource","event","tsField"?}  create or update (tenant, datasource, event); 200 the hook
//	GET                                     200, the tenant's hooks
//	GET /<token>                            200, one hook; 404 if not the tenant's
//	DELETE /<token>                         204; the URL stops working at once
//	HEAD /<token>                           200, or 404 if unknown
//
// A hook is answered as {"datasource","event","createdAt" (unix ms),
// "apiToken","tenantId","token","tsField","hookUrl"}.
//
// Caddyfile syntax:
//
//	webhook_gateway_tokens [<matcher>] {
//		issuer   <name>
//		tenant   <placeholder>
//		hook_url <template with {api_token} and {token}>
//		prefix   <path>
//	}
type TokensHandler struct {
	// Issuer names the token set; `auth issued <issuer> ...` accepts the
	// hooks issued here. Required.
	Issuer string `json:"issuer"`

	// Tenant is a placeholder template resolved per request, e.g.
	// {http.request.header.X-Tenant-Id}; a request where it is empty gets
	// 401. Required.
	Tenant string `json:"tenant"`

	// HookURL is the template of the hookUrl answered: {api_token} and
	// {token} are the hook's tokens, other placeholders are the request's,
	// e.g. https://{http.request.host}/wh/{api_token}/{token}. Required.
	HookURL string `json:"hook_url"`

	// Prefix is the path of the hook collection: a request path is that
	// prefix, then optionally /<token>; other paths get 404. Default:
	// taken from the directive's path matcher in the Caddyfile. Without
	// one, the last path segment is the token of HEAD and DELETE, and of
	// GET when it has a token's form (40 hex digits); any other path is
	// the collection.
	Prefix string `json:"prefix,omitempty"`

	store  queue.HookTokens
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (TokensHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_gateway_tokens",
		New: func() caddy.Module { return new(TokensHandler) },
	}
}

// Provision gets the store of issued hooks, the event store of the
// webhook_gateway app.
func (t *TokensHandler) Provision(ctx caddy.Context) error {
	t.logger = ctx.Logger()
	store, err := hookStore(ctx)
	if err != nil {
		return fmt.Errorf("webhook_gateway_tokens: %w", err)
	}
	t.store = store
	return nil
}

// hookStore opens the app's event store and returns its issued hooks.
func hookStore(ctx caddy.Context) (queue.HookTokens, error) {
	appIface, err := ctx.App("webhook_gateway")
	if err != nil {
		return nil, fmt.Errorf("webhook_gateway app: %w", err)
	}
	app := appIface.(*App)
	if err := app.openStore(); err != nil {
		return nil, err
	}
	store, ok := app.store.(queue.HookTokens)
	if !ok {
		return nil, errors.New("the event store does not keep issued hooks")
	}
	return store, nil
}

// Validate checks the configuration.
func (t *TokensHandler) Validate() error {
	switch {
	case t.Issuer == "":
		return errors.New("webhook_gateway_tokens needs an issuer")
	case len(t.Issuer) > queue.MaxHookField:
		return fmt.Errorf("webhook_gateway_tokens: issuer longer than %d bytes", queue.MaxHookField)
	case t.Tenant == "":
		return errors.New("webhook_gateway_tokens needs a tenant placeholder, e.g. {http.request.header.X-Tenant-Id}")
	case t.HookURL == "":
		return errors.New("webhook_gateway_tokens needs a hook_url template, e.g. https://{http.request.host}/wh/{api_token}/{token}")
	case !strings.Contains(t.HookURL, "{api_token}") || !strings.Contains(t.HookURL, "{token}"):
		return errors.New("webhook_gateway_tokens: hook_url must hold {api_token} and {token}")
	case t.Prefix != "" && !strings.HasPrefix(t.Prefix, "/"):
		return fmt.Errorf("webhook_gateway_tokens: prefix %q must start with /", t.Prefix)
	}
	return nil
}

// hookView is a hook as the API answers it.
type hookView struct {
	Datasource string `json:"datasource"`
	Event      string `json:"event"`
	CreatedAt  int64  `json:"createdAt"`
	APIToken   string `json:"apiToken"`
	TenantID   string `json:"tenantId"`
	Token      string `json:"token"`
	TSField    string `json:"tsField"`
	HookURL    string `json:"hookUrl"`
}

// hookRequest is the body of a POST. TSField is a pointer: omitted keeps
// the stored one, "" clears it.
type hookRequest struct {
	Datasource *string `json:"datasource"`
	Event      *string `json:"event"`
	TSField    *string `json:"tsField"`
}

// ServeHTTP answers the management API.
func (t *TokensHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// answers hold tokens: no cache may keep them
	w.Header().Set("Cache-Control", "no-store")
	token, item, ok := t.route(r.Method, r.URL.Path)
	if !ok {
		return t.fail(w, r, http.StatusNotFound, "not found")
	}
	var allow string
	switch {
	case item && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete):
	case !item && (r.Method == http.MethodGet || r.Method == http.MethodPost):
	case item:
		allow = "GET, HEAD, DELETE"
	default:
		allow = "GET, POST"
	}
	if allow != "" {
		w.Header().Set("Allow", allow)
		closeUnread(w, r)
		return t.fail(w, r, http.StatusMethodNotAllowed, "method not allowed")
	}
	tenant := repl.ReplaceAll(t.Tenant, "")
	if tenant == "" {
		closeUnread(w, r)
		return t.fail(w, r, http.StatusUnauthorized, "no tenant")
	}
	if len(tenant) > queue.MaxHookField || !utf8.ValidString(tenant) {
		closeUnread(w, r)
		return t.fail(w, r, http.StatusBadRequest, fmt.Sprintf("tenant id must be UTF-8 of at most %d bytes", queue.MaxHookField))
	}
	ctx := r.Context()
	switch {
	case r.Method == http.MethodPost:
		return t.put(w, r, repl, tenant)
	case !item:
		hooks, err := t.store.Hooks(ctx, t.Issuer, tenant)
		if err != nil {
			return t.storeFailed(w, r, err)
		}
		out := make([]hookView, len(hooks))
		for i, h := range hooks {
			out[i] = t.view(h, repl)
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	case r.Method == http.MethodDelete:
		if err := t.store.DeleteHook(ctx, t.Issuer, tenant, token); err != nil {
			return t.storeFailed(w, r, err)
		}
		t.logger.Info("issued hook deleted", zap.String("issuer", t.Issuer), zap.String("tenant", tenant))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	h, err := t.store.HookByToken(ctx, t.Issuer, tenant, token)
	if r.Method == http.MethodHead {
		switch {
		case err == nil:
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return nil
		case errors.Is(err, queue.ErrNotFound):
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNotFound)
			return nil
		}
	}
	if err != nil {
		return t.storeFailed(w, r, err)
	}
	writeJSON(w, http.StatusOK, t.view(h, repl))
	return nil
}

// route splits a request path into the token it names, if any, and
// whether it names one hook; ok is false for a path that is neither the
// collection nor one of its hooks. Without a prefix, HEAD and DELETE
// always name a hook by the last segment (they have no collection form)
// and GET does when that segment has the form of a token.
func (t *TokensHandler) route(method, path string) (token string, item, ok bool) {
	if t.Prefix != "" {
		rest, found := strings.CutPrefix(path, strings.TrimSuffix(t.Prefix, "/"))
		if !found || (rest != "" && rest[0] != '/') {
			return "", false, false
		}
		rest = strings.TrimPrefix(rest, "/")
		switch {
		case rest == "":
			return "", false, true
		case strings.Contains(rest, "/"):
			return "", false, false
		}
		return rest, true, true
	}
	last := path[strings.LastIndexByte(path, '/')+1:]
	if method == http.MethodHead || method == http.MethodDelete || isTokenForm(last) {
		return last, true, true
	}
	return "", false, true
}

// isTokenForm reports whether s looks like a token: 40 hex digits.
func isTokenForm(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// put creates or updates a hook from the POST body.
func (t *TokensHandler) put(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, tenant string) error {
	body, err := readBody(w, r, maxTokensBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return t.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxTokensBody))
		}
		return t.fail(w, r, http.StatusBadRequest, "could not read body")
	}
	req, err := decodeHookRequest(body)
	if err != nil {
		return t.fail(w, r, http.StatusBadRequest, err.Error())
	}
	in := queue.IssuedHook{Issuer: t.Issuer, Tenant: tenant, Datasource: *req.Datasource, Event: *req.Event}
	if req.TSField != nil {
		in.TSField = *req.TSField
	}
	h, err := t.store.PutHook(r.Context(), in, req.TSField == nil)
	if err != nil {
		return t.storeFailed(w, r, err)
	}
	writeJSON(w, http.StatusOK, t.view(h, repl))
	return nil
}

// decodeHookRequest parses and checks a POST body; its errors name the
// field at fault and are safe to answer. Field names are matched exactly
// (encoding/json alone would accept "TSFIELD" for tsField).
func decodeHookRequest(body []byte) (hookRequest, error) {
	var req hookRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, errors.New(`body is empty; expected {"datasource", "event", "tsField"?}`)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		var synErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return req, errors.New(`body must be a JSON object {"datasource", "event", "tsField"?}`)
		case errors.As(err, &synErr):
			return req, fmt.Errorf("malformed JSON at byte %d", max(synErr.Offset-1, 0))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return req, errors.New("malformed JSON: unexpected end")
		}
		return req, errors.New("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("malformed JSON: data after the object")
	}
	if fields == nil {
		return req, errors.New(`body must be a JSON object {"datasource", "event", "tsField"?}`)
	}
	for name, raw := range fields {
		var into **string
		switch name {
		case "datasource":
			into = &req.Datasource
		case "event":
			into = &req.Event
		case "tsField":
			into = &req.TSField
		default:
			return req, fmt.Errorf("unknown field %q (want datasource, event, tsField)", name)
		}
		if err := json.Unmarshal(raw, into); err != nil {
			return req, fmt.Errorf("field %q must be a string", name)
		}
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"datasource", req.Datasource}, {"event", req.Event}} {
		switch {
		case f.v == nil || *f.v == "":
			return req, fmt.Errorf("field %q is required", f.name)
		case len(*f.v) > maxNameLength || !hookName.MatchString(*f.v):
			return req, fmt.Errorf("field %q must be 1 to %d letters, digits, '_' or '-'", f.name, maxNameLength)
		}
	}
	if ts := req.TSField; ts != nil {
		if len(*ts) > maxNameLength*2 || !printableASCII(*ts) {
			return req, fmt.Errorf("field \"tsField\" must be a path of at most %d printable ASCII characters", maxNameLength*2)
		}
	}
	return req, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// view is a hook as answered, with its URL.
func (t *TokensHandler) view(h queue.IssuedHook, repl *caddy.Replacer) hookView {
	url := strings.NewReplacer("{api_token}", h.APIToken, "{token}", h.Token).Replace(t.HookURL)
	return hookView{
		Datasource: h.Datasource,
		Event:      h.Event,
		CreatedAt:  h.CreatedAt.UnixMilli(),
		APIToken:   h.APIToken,
		TenantID:   h.Tenant,
		Token:      h.Token,
		TSField:    h.TSField,
		HookURL:    repl.ReplaceKnown(url, ""),
	}
}

// storeFailed answers a store error: 404 for a hook that is not the
// tenant's (the same whether it exists for another tenant or not), 503
// when the store is unreachable, else 500. The cause is logged, never
// answered.
func (t *TokensHandler) storeFailed(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, queue.ErrNotFound) {
		return t.fail(w, r, http.StatusNotFound, "hook not found")
	}
	t.logger.Error("issued hooks store", zap.String("issuer", t.Issuer), zap.Error(err))
	if errors.Is(err, queue.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		return t.fail(w, r, http.StatusServiceUnavailable, "hook store unavailable")
	}
	return t.fail(w, r, http.StatusInternalServerError, "internal error")
}

// fail sends the error to handle_errors routes if the server has them,
// else writes {"error", "status"}.
func (t *TokensHandler) fail(w http.ResponseWriter, r *http.Request, status int, public string) error {
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		return caddyhttp.Error(status, errors.New(public))
	}
	writeJSON(w, status, errorBody{Error: public, Status: status})
	return nil
}

// parseTokensDirective sets up the handler from Caddyfile tokens; a path
// matcher on the directive gives the default prefix.
func parseTokensDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	t := new(TokensHandler)
	return routeNamedByMatcher(h, t, func(name string) {
		if t.Prefix == "" && name != "" {
			t.Prefix = "/" + name
		}
	})
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax in
// the TokensHandler type's documentation.
func (t *TokensHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("webhook_gateway_tokens: option %s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "issuer":
			err = oneArg(d, &t.Issuer)
		case "tenant":
			err = oneArg(d, &t.Tenant)
		case "hook_url":
			err = oneArg(d, &t.HookURL)
		case "prefix":
			err = oneArg(d, &t.Prefix)
		default:
			return d.Errf("unrecognized webhook_gateway_tokens option %q (want issuer, tenant, hook_url or prefix)", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TokensHandler)(nil)
	_ caddy.Validator             = (*TokensHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*TokensHandler)(nil)
	_ caddyfile.Unmarshaler       = (*TokensHandler)(nil)
)
