package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-webhooks/gateway/reshape"
	"github.com/caddy-webhooks/gateway/verify"
)

// maxCLIBody bounds what the commands read from a file, stdin or the
// admin API.
const maxCLIBody = 64 << 20

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "webhook-gateway",
		Usage: "send|reshape|events|replay",
		Short: "Tries webhook_gateway hooks: signs test requests, reshapes samples, lists and replays events",
		Long: `
Commands for testing and operating webhook_gateway hooks:

  send     signs a body exactly as a provider does and sends it to a hook
  reshape  runs a hook's JSON check and reshape on a sample body, offline
  events   lists the stored events of a running Caddy (admin API)
  replay   delivers stored events again (admin API)

Run 'caddy webhook-gateway <command> --help' for each command's flags.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(sendCommand(), reshapeCommand(), eventsCommand(), replayCommand())
		},
	})
}

func sendCommand() *cobra.Command {
	var signable, other []string
	for _, name := range verify.Presets() {
		if ok, why := verify.Signable(name); ok {
			signable = append(signable, name)
		} else {
			other = append(other, name+" ("+why+")")
		}
	}
	c := &cobra.Command{
		Use:   "send --preset <name> --secret <secret> --url <url> [--data @<file>|-|<json>] [--header '<Name>: <value>'...] [--timestamp <unix>] [--print]",
		Short: "Signs a body as a provider does and sends it to a hook",
		Long: `
Signs a request body exactly as the provider of --preset signs its webhooks,
with --secret (the secret configured on the hook's auth line), and sends it
to --url. The answer's status, headers and body are printed; the exit status
is 0 for a 2xx answer and 1 otherwise.

--data is the body: @<file> reads a file, - reads stdin, anything else is the
body itself. Default: {}. The bytes are sent as they are; a file that ends in
a newline is sent with it, as 'curl --data-binary @file' would.

--secret may be a placeholder such as {env.GITHUB_SECRET}, so the secret
need not appear in the shell history.

--timestamp signs at the given unix time (seconds) instead of now, to try a
hook's tolerance. --id sets the delivery id where the provider sends one.

--header adds a request header ('Name: value'); repeat it for more.
--print shows the signed request instead of sending it.

Presets that can be signed:
  ` + wrapWords(signable, 76) + `
Presets that cannot be signed with the configured secret:
  ` + strings.Join(other, "\n  ") + `
`,
		RunE: caddycmd.WrapCommandFuncForCobra(cmdSend),
	}
	c.Flags().StringP("preset", "p", "", "Provider preset whose signature scheme to use (required)")
	c.Flags().StringP("secret", "s", "", "The hook's secret for the preset, or a placeholder like {env.NAME} (required)")
	c.Flags().StringP("url", "u", "", "URL of the hook (required unless --print, and by presets that sign the URL)")
	c.Flags().StringP("data", "d", "{}", "Body: @<file>, - for stdin, or the body itself")
	c.Flags().StringArrayP("header", "H", nil, "Extra request header 'Name: value' (repeatable)")
	c.Flags().Int64("timestamp", 0, "Sign at this unix time in seconds instead of now")
	c.Flags().String("id", "", "Delivery id for presets that send one (default: a new one)")
	c.Flags().String("method", http.MethodPost, "HTTP method")
	c.Flags().String("content-type", "application/json", "Content-Type of the body")
	c.Flags().Bool("print", false, "Print the signed request instead of sending it")
	return c
}

func cmdSend(fl caddycmd.Flags) (int, error) {
	preset := strings.ToLower(fl.String("preset"))
	if preset == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--preset is required")
	}
	if _, ok := verify.Lookup(preset); !ok {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("unknown preset %q%s", preset, suggestPreset(preset))
	}
	secret := caddy.NewReplacer().ReplaceKnown(fl.String("secret"), "")
	if secret == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--secret is required (and must not resolve to an empty value)")
	}
	target := fl.String("url")
	if target == "" && !fl.Bool("print") {
		return caddy.ExitCodeFailedStartup, errors.New("--url is required")
	}
	body, err := readData(fl.String("data"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	header, err := parseHeaders(stringArray(fl, "header"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	in := verify.SignInput{
		Method:      strings.ToUpper(fl.String("method")),
		URL:         target,
		ContentType: fl.String("content-type"),
		Body:        body,
		ID:          fl.String("id"),
	}
	if ts, _ := fl.GetInt64("timestamp"); ts != 0 {
		in.Time = time.Unix(ts, 0)
	}
	signed, err := verify.Sign(preset, secret, in)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	req, err := http.NewRequest(in.Method, signed.URL, bytes.NewReader(signed.Body))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--url: %v", err)
	}
	req.Header.Set("Content-Type", in.ContentType)
	req.Header.Set("User-Agent", "caddy-webhook-gateway-send")
	for k, v := range signed.Header {
		req.Header[k] = v
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if fl.Bool("print") {
		printRequest(os.Stdout, req, signed.Body)
		return 0, nil
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--url %q: want an http or https URL", target)
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return 1, err
	}
	defer func() { _ = resp.Body.Close() }()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxCLIBody))
	if err != nil {
		return 1, fmt.Errorf("reading the answer: %v", err)
	}
	fmt.Printf("%s %s\n", resp.Proto, resp.Status)
	printHeader(os.Stdout, resp.Header)
	fmt.Println()
	fmt.Println(string(respBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 1, fmt.Errorf("the hook answered %d", resp.StatusCode)
	}
	return 0, nil
}

// suggestPreset says "; did you mean X?" for a near miss.
func suggestPreset(name string) string {
	if best := verify.Closest(name); best != "" {
		return "; did you mean " + best + "?"
	}
	return ""
}

func reshapeCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "reshape --config <path> [--adapter <name>] --hook <name> [--data @<file>|-|<json>]",
		Short: "Runs a hook's JSON check and reshape on a sample body",
		Long: `
Loads the config (a Caddyfile or JSON, adapted as 'caddy adapt' does), finds
the webhook_gateway hook named --hook, and runs on the sample body what the
hook runs after authentication: the JSON check, then its reshape. Nothing is
started or sent, no secret is needed.

Prints the reshaped body (or the body itself when the hook has no reshape).
When the hook would refuse the sample, prints the status it would answer
(400 for invalid JSON, 413 for a body over max_size, 422 for a required
field that is missing) with its message, and exits with status 1.

Placeholders that exist only during a request (such as {http.request.*})
are empty here; {json.*}, {env.*} and {http.webhook_gateway.*} work.

--data is the sample: @<file> reads a file, - reads stdin (the default),
anything else is the body itself.
`,
		RunE: caddycmd.WrapCommandFuncForCobra(cmdReshape),
	}
	c.Flags().StringP("config", "c", "", "Configuration file (required)")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	c.Flags().String("hook", "", "Name of the hook (its name, or the name derived from its path matcher)")
	c.Flags().StringP("data", "d", "-", "Sample body: @<file>, - for stdin, or the body itself")
	return c
}

func cmdReshape(fl caddycmd.Flags) (int, error) {
	if fl.String("config") == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(fl.String("config"), fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	hooks, err := findHooks(cfg)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	name := fl.String("hook")
	found, ok := hooks[name]
	if ok && len(found) > 1 {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("%d hooks are named %q; give each its own name (the name option)", len(found), name)
	}
	if !ok {
		names := make([]string, 0, len(hooks))
		for n := range hooks {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return caddy.ExitCodeFailedStartup, errors.New("the config has no webhook_gateway hook")
		}
		return caddy.ExitCodeFailedStartup, fmt.Errorf("no hook named %q; the config has: %s", name, strings.Join(names, ", "))
	}
	body, err := readData(fl.String("data"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	out, status, err := found[0].trial(body)
	if err != nil {
		fmt.Printf("%d %s: %s\n", status, http.StatusText(status), err)
		return 1, fmt.Errorf("hook %s would answer %d", name, status)
	}
	fmt.Println(string(out))
	return 0, nil
}

// findHooks reads every webhook_gateway handler of an adapted config, by
// hook name, wherever it is nested (routes, subroutes, handle blocks).
func findHooks(cfg []byte) (map[string][]*Handler, error) {
	var tree any
	if err := json.Unmarshal(cfg, &tree); err != nil {
		return nil, fmt.Errorf("reading the config: %v", err)
	}
	hooks := map[string][]*Handler{}
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "webhook_gateway" {
				raw, err := json.Marshal(v)
				if err != nil {
					return err
				}
				h := new(Handler)
				if err := json.Unmarshal(raw, h); err != nil {
					return fmt.Errorf("a webhook_gateway handler: %v", err)
				}
				name := h.Name
				if name == "" {
					name = "default"
				}
				hooks[name] = append(hooks[name], h)
			}
			for _, child := range v {
				if err := walk(child); err != nil {
					return err
				}
			}
		case []any:
			for _, child := range v {
				if err := walk(child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return hooks, walk(tree)
}

// trial runs, on a sample body, what ServeHTTP runs after authentication:
// the size and JSON checks and the reshape. It returns the status the hook
// would answer on failure.
func (h *Handler) trial(body []byte) ([]byte, int, error) {
	maxSize := h.MaxSize
	if maxSize <= 0 {
		maxSize = defaultMaxSize
	}
	if int64(len(body)) > maxSize {
		return nil, http.StatusRequestEntityTooLarge, errors.New("body too large")
	}
	doc := body
	if h.FormPayload && !looksLikeJSON(body) {
		var err error
		if doc, err = formPayload(body); err != nil {
			return nil, http.StatusBadRequest, err
		}
	}
	if err := checkJSON(doc); err != nil {
		return nil, http.StatusBadRequest, err
	}
	if h.Reshape == nil {
		return doc, 0, nil
	}
	program, err := h.Reshape.compile()
	if err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("reshape: %v", err)
	}
	repl := caddy.NewReplacer()
	repl.Set(phID, newUUIDv7())
	repl.Set(phAuth, "none")
	repl.Set(phReceivedAt, time.Now().UTC().Format(time.RFC3339Nano))
	repl.Map(jsonPlaceholders(doc))
	out, err := program.Apply(doc, repl.Get)
	if err != nil {
		var missing *reshape.MissingError
		if errors.As(err, &missing) {
			return nil, http.StatusUnprocessableEntity, missing
		}
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("payload could not be reshaped: %v", err)
	}
	return out, 0, nil
}

func looksLikeJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[' || b[0] == '"')
}

func eventsCommand() *cobra.Command {
	c := &cobra.Command{
		Use: "events [--address <interface>] [--hook <name>] [--status <status>] [--since <time>] [--until <time>] [--q <text>] " +
			"[--id <id>] [--key <key>] [--limit <n>] [--cursor <c>] [--query <name>=<value>...]",
		Short: "Lists the run log of a running Caddy",
		Long: `
Asks the admin API of a running Caddy for the webhook_gateway run log and
prints the answer as indented JSON. With --key, shows that one record with
its headers, payload and attempts; with --id, every record of that event id
(GET /webhook_gateway/event); otherwise lists records, newest first
(GET /webhook_gateway/events), filtered by the flags given:

  --hook    the hook's name
  --status  queued, delivering, delivered, dead, rejected, passed or duplicate
  --since   received at or after: an RFC 3339 time (2026-12-01T10:42:00Z),
            or a duration back from now (90m, 24h)
  --until   received before: the same forms
  --q       text the event id or the payload contains, in any case

A listing ends with "next" when there is more: pass it as --cursor.
--query adds any other parameter the admin API takes.

The admin address is --address if given, else the one in --config, else
the default (CADDY_ADMIN, or localhost:2019), as for 'caddy stop'.
`,
		RunE: caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			path := "/webhook_gateway/events"
			if fl.String("id") != "" || fl.String("key") != "" {
				path = "/webhook_gateway/event"
			}
			return adminCall(fl, http.MethodGet, path, eventsQueryFlags)
		}),
	}
	adminFlags(c)
	c.Flags().String("limit", "", "Most records to list (default 50, at most 1000)")
	c.Flags().String("cursor", "", "Where the previous page ended (its \"next\")")
	c.Flags().String("since", "", "Received at or after: RFC 3339 time, or a duration back from now (24h)")
	c.Flags().String("until", "", "Received before: RFC 3339 time, or a duration back from now")
	c.Flags().String("q", "", "Text the event id or the payload contains")
	return c
}

func replayCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "replay [--address <interface>] (--key <key> | --id <id> [--hook <name>] | --hook <name> --status dead) [--query <name>=<value>...]",
		Short: "Delivers recorded events again through a running Caddy",
		Long: `
Asks the admin API of a running Caddy to deliver recorded events again
(POST /webhook_gateway/replay) and prints its answer as indented JSON:
--key names one record; --id every record of an event id (of --hook, if
given); --hook with --status dead every dead record of a hook. Records of
sync hooks replay like async ones: the running config's workers deliver
them. Rejected, passed and duplicate records, and those whose body was not
kept whole, cannot be replayed: the answer says why (409).

The admin address is --address if given, else the one in --config, else
the default (CADDY_ADMIN, or localhost:2019), as for 'caddy stop'.
`,
		RunE: caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			return adminCall(fl, http.MethodPost, "/webhook_gateway/replay", replayQueryFlags)
		}),
	}
	adminFlags(c)
	return c
}

// The flags passed through as query parameters.
var (
	replayQueryFlags = []string{"hook", "status", "id", "key"}
	eventsQueryFlags = []string{"hook", "status", "id", "key", "limit", "cursor", "since", "until", "q"}
)

func adminFlags(c *cobra.Command) {
	c.Flags().String("address", "", "The address of the admin API, if not the default")
	c.Flags().StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply (when --config is used)")
	c.Flags().String("hook", "", "Hook name")
	c.Flags().String("status", "", "Record status (queued, delivering, delivered, dead, rejected, passed, duplicate)")
	c.Flags().String("id", "", "Event id")
	c.Flags().String("key", "", "Record key")
	c.Flags().StringArray("query", nil, "Another query parameter, <name>=<value> (repeatable)")
}

// cliTime reads --since/--until: an RFC 3339 time is passed as it is, a
// duration is that long before now.
func cliTime(v string, now time.Time) string {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339Nano)
	}
	return v
}

// adminCall sends the query flags to an admin endpoint and prints the
// JSON answer indented.
func adminCall(fl caddycmd.Flags, method, path string, queryFlags []string) (int, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("finding the admin address: %v", err)
	}
	q := url.Values{}
	for _, name := range queryFlags {
		v := fl.String(name)
		if name == "since" || name == "until" {
			v = cliTime(v, time.Now())
		}
		if v != "" {
			q.Set(name, v)
		}
	}
	for _, kv := range stringArray(fl, "query") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("--query %q: want <name>=<value>", kv)
		}
		q.Add(k, v)
	}
	uri := path
	if len(q) > 0 {
		uri += "?" + q.Encode()
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, nil)
	if err != nil {
		return 1, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCLIBody))
	if err != nil {
		return 1, fmt.Errorf("reading the answer: %v", err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	fmt.Println(strings.TrimRight(pretty.String(), "\n"))
	return 0, nil
}

// readData reads --data: @<file>, - for stdin, or the text itself.
func readData(spec string) ([]byte, error) {
	var r io.Reader
	switch {
	case spec == "-":
		r = os.Stdin
	case strings.HasPrefix(spec, "@"):
		f, err := os.Open(spec[1:])
		if err != nil {
			return nil, fmt.Errorf("--data: %v", err)
		}
		defer func() { _ = f.Close() }()
		r = f
	default:
		return []byte(spec), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCLIBody+1))
	if err != nil {
		return nil, fmt.Errorf("--data: %v", err)
	}
	if len(b) > maxCLIBody {
		return nil, fmt.Errorf("--data: larger than %d bytes", maxCLIBody)
	}
	return b, nil
}

// parseHeaders reads 'Name: value' flags.
func parseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for _, line := range lines {
		k, v, ok := strings.Cut(line, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", line)
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return h, nil
}

// printRequest writes the request as it would go on the wire (HTTP/1.1).
func printRequest(w io.Writer, req *http.Request, body []byte) {
	_, _ = fmt.Fprintf(w, "%s %s HTTP/1.1\n", req.Method, req.URL.RequestURI())
	if req.URL.Host != "" {
		_, _ = fmt.Fprintf(w, "Host: %s\n", req.URL.Host)
	}
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	printHeader(w, req.Header)
	_, _ = fmt.Fprintf(w, "\n%s\n", body)
}

func printHeader(w io.Writer, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			_, _ = fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}

// wrapWords joins words with spaces, wrapping lines at width.
func wrapWords(words []string, width int) string {
	var b strings.Builder
	line := 0
	for i, w := range words {
		if i > 0 {
			if line+1+len(w) > width {
				b.WriteString("\n  ")
				line = 0
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

func stringArray(fl caddycmd.Flags, name string) []string {
	v, _ := fl.GetStringArray(name)
	return v
}
