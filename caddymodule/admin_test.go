package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// logRecord is a run-log record as the admin API shows it.
type logRecord struct {
	Key         string              `json:"key"`
	ID          string              `json:"id"`
	Hook        string              `json:"hook"`
	Mode        string              `json:"mode"`
	Action      int                 `json:"action"`
	ActionName  string              `json:"action_name"`
	Status      string              `json:"status"`
	Inbound     int                 `json:"inbound_status"`
	Auth        string              `json:"auth"`
	Reason      string              `json:"reason"`
	Request     string              `json:"request"`
	ReceivedAt  time.Time           `json:"received_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	DueAt       *time.Time          `json:"due_at"`
	RemoteIP    string              `json:"remote_ip"`
	Headers     map[string][]string `json:"headers"`
	Payload     json.RawMessage     `json:"payload"`
	PayloadText *string             `json:"payload_text"`
	Sent        json.RawMessage     `json:"sent"`
	SentText    *string             `json:"sent_text"`
	Truncated   bool                `json:"truncated"`
	Replayable  *bool               `json:"replayable"`
	Values      json.RawMessage     `json:"values"`
	Attempts    []struct {
		At        time.Time `json:"at"`
		Status    int       `json:"status"`
		LatencyMS *float64  `json:"latency_ms"`
		Error     string    `json:"error"`
	} `json:"attempts"`
}

type logPage struct {
	Events []logRecord `json:"events"`
	Next   string      `json:"next"`
}

type hooksAnswer struct {
	Hooks []struct {
		Name    string                               `json:"name"`
		Mode    string                               `json:"mode"`
		Log     string                               `json:"log"`
		Actions []string                             `json:"actions"`
		Counts  map[string]map[string]map[string]int `json:"-"`
		Raw     struct {
			Hour map[string]int `json:"hour"`
			Day  map[string]int `json:"day"`
		} `json:"counts"`
	} `json:"hooks"`
}

// listLog lists the run log with the given query, every page.
func listLog(t *testing.T, query string) []logRecord {
	t.Helper()
	var all []logRecord
	cursor := ""
	for range 100 {
		var page logPage
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		if code := adminGet(t, "/webhook_gateway/events?limit=1000&"+q, &page); code != http.StatusOK {
			t.Fatalf("events?%s: %d", q, code)
		}
		if page.Events == nil {
			t.Fatalf("events?%s: events is not a list", q)
		}
		all = append(all, page.Events...)
		if page.Next == "" {
			return all
		}
		cursor = page.Next
	}
	t.Fatalf("events?%s: more than 100 pages", query)
	return nil
}

// names are the test's names of records (keyName by key), sorted.
func names(recs []logRecord, keyName map[string]string) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, keyName[r.Key])
	}
	sort.Strings(out)
	return out
}

func recordOf(t *testing.T, key string) (logRecord, string) {
	t.Helper()
	resp, err := http.Get(adminURL() + "/webhook_gateway/event?key=" + url.QueryEscape(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event?key=%s: %d %v", key, resp.StatusCode, err)
	}
	var rec logRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return rec, string(raw)
}

// TestRunLogAPI sends requests of every mode and several rejections to a
// real Caddy, and reads them back through the admin API: every filter,
// paging, the hooks' counts, one record's headers and bodies, hiding for
// `log meta`, and replay refused for records that cannot be delivered.
func TestRunLogAPI(t *testing.T) {
	up := newUpstream(t, nil)
	const syncKey = "sync-key-Vh3x9QmZ2"
	tester, _ := asyncCaddy(t, "", fmt.Sprintf(`
http://localhost:9080 {
	handle /sync {
		webhook_gateway {
			name sync
			auth api_key %s
			id_from {header.X-Event-Id}
			reshape {
				set Name {json.petname} required
			}
			forward %s/pets {
				name pets
			}
		}
	}
	handle /gate {
		webhook_gateway {
			name gate
			auth api_key %s
			id_from {header.X-Event-Id}
		}
		respond "gated"
	}
	handle /async {
		webhook_gateway {
			name async
			auth api_key %s
			id_from {header.X-Event-Id}
			mode async
			deduplicate
			forward %s/pets
		}
	}
	handle /small {
		webhook_gateway {
			name small
			log_body 16
			id_from {header.X-Event-Id}
			forward %s/pets
		}
	}
	handle /asmall {
		webhook_gateway {
			name asmall
			log_body 16
			id_from {header.X-Event-Id}
			mode async
			reshape {
				set L {json.longer}
			}
			forward %s/pets
		}
	}
	handle /meta {
		webhook_gateway {
			name meta
			log meta
			auth api_key %s
			id_from {header.X-Event-Id}
			mode async
			forward %s/pets
		}
	}
}
`, syncKey, up.URL, syncKey, syncKey, up.URL, up.URL, up.URL, syncKey, up.URL))

	send := func(path, id, key, body string, want int) {
		t.Helper()
		h := http.Header{"X-Event-Id": {id}, "X-Tenant": {"acme"}}
		if key != "" {
			h.Set("X-Api-Key", key)
		}
		if status, _, b := post(t, tester, path, "application/json", h, []byte(body)); status != want {
			t.Fatalf("%s %s: %d %s, want %d", path, id, status, b, want)
		}
	}
	send("/sync", "evt-s1", syncKey, `{"petname":"Rex","note":"FindMe-Zeta"}`, http.StatusOK)
	send("/sync", "evt-s2", "", `{"petname":"Rex"}`, http.StatusUnauthorized)
	send("/sync", "evt-s3", "wrong-key-123456", `{"petname":"Rex"}`, http.StatusUnauthorized)
	send("/sync", "evt-s4", syncKey, `{"other":1}`, http.StatusUnprocessableEntity)
	send("/sync", "evt-s5", syncKey, `{"petname":`, http.StatusBadRequest)
	send("/gate", "evt-g1", syncKey, `{"g":1}`, http.StatusOK)
	// split the records in time for since/until
	time.Sleep(20 * time.Millisecond)
	split := time.Now()
	time.Sleep(20 * time.Millisecond)
	send("/async", "evt-a1", syncKey, `{"a":1}`, http.StatusAccepted)
	send("/async", "evt-a1", syncKey, `{"a":1}`, http.StatusOK) // duplicate
	send("/meta", "evt-m1", syncKey, `{"secretish":"meta-body-7Kq"}`, http.StatusAccepted)
	send("/sync", "evt-s6", syncKey, `{"petname":"Max"}`, http.StatusOK)
	send("/small", "evt-t1", "", `{"longer":"than sixteen bytes"}`, http.StatusOK)
	send("/asmall", "evt-t2", "", `{"longer":"than sixteen bytes"}`, http.StatusAccepted)

	// records are written in the background: wait for all ten
	var all []logRecord
	waitFor(t, "twelve records, the async ones delivered", func() bool {
		all = listLog(t, "")
		n := 0
		for _, r := range all {
			if r.Status != "queued" && r.Status != "delivering" {
				n++
			}
		}
		return len(all) == 12 && n == 12
	})
	// newest first: keys grow with the time a record is written
	for i := 1; i < len(all); i++ {
		if all[i].Key >= all[i-1].Key {
			t.Errorf("not newest first: %s (%s) after %s (%s)", all[i].Key, all[i].ID, all[i-1].Key, all[i-1].ID)
		}
	}
	// A request refused before its id was decided gets a new one: the
	// test tells records apart by the X-Event-Id header recorded.
	byID := map[string]logRecord{}
	keyName := map[string]string{}
	for _, r := range all {
		name := r.ID
		if full, _ := recordOf(t, r.Key); len(full.Headers["X-Event-Id"]) == 1 {
			name = full.Headers["X-Event-Id"][0]
		}
		if name == "evt-a1" && r.Status == "duplicate" {
			name = "evt-a1-dup"
		}
		if _, seen := byID[name]; seen {
			t.Errorf("two records of %s", name)
		}
		byID[name] = r
		keyName[r.Key] = strings.TrimSuffix(name, "-dup")
	}
	for id, want := range map[string]struct {
		hook, mode, status, auth, reason string
		inbound, action                  int
	}{
		"evt-s1":     {"sync", "sync", "delivered", "api_key", "", 200, 0},
		"evt-s2":     {"sync", "sync", "rejected", "", "missing", 401, -1},
		"evt-s3":     {"sync", "sync", "rejected", "", "does not match", 401, -1},
		"evt-s4":     {"sync", "sync", "rejected", "api_key", "required field", 422, -1},
		"evt-s5":     {"sync", "sync", "rejected", "api_key", "JSON", 400, -1},
		"evt-g1":     {"gate", "gate", "passed", "api_key", "", 200, -1},
		"evt-a1":     {"async", "async", "delivered", "api_key", "", 202, 0},
		"evt-a1-dup": {"async", "async", "duplicate", "api_key", "", 200, -1},
		"evt-m1":     {"meta", "async", "delivered", "api_key", "", 202, 0},
		"evt-s6":     {"sync", "sync", "delivered", "api_key", "", 200, 0},
		"evt-t1":     {"small", "sync", "delivered", "none", "", 200, 0},
		"evt-t2":     {"asmall", "async", "delivered", "none", "", 202, 0},
	} {
		r, ok := byID[id]
		if !ok {
			t.Errorf("%s not listed", id)
			continue
		}
		if r.Hook != want.hook || r.Mode != want.mode || r.Status != want.status || r.Inbound != want.inbound || r.Action != want.action ||
			(want.auth != "" && r.Auth != want.auth) || !strings.Contains(r.Reason, want.reason) || (want.reason == "" && r.Reason != "") {
			t.Errorf("%s: %+v, want %+v", id, r, want)
		}
		if r.Key == "" || r.ReceivedAt.IsZero() || r.Attempts == nil || r.Headers != nil || r.Payload != nil || r.Values != nil {
			t.Errorf("%s: list item %+v", id, r)
		}
		if !strings.HasPrefix(r.Request, "POST /") || strings.Contains(r.Request, "?") {
			t.Errorf("%s: request %q", id, r.Request)
		}
	}
	if s1 := byID["evt-s1"]; s1.ActionName != "pets" || len(s1.Attempts) != 1 || s1.Attempts[0].Status != 200 || s1.Attempts[0].LatencyMS == nil {
		t.Errorf("evt-s1 attempts %+v, action %q", s1.Attempts, s1.ActionName)
	}

	// filters: hook, each status, id, text, time
	for query, want := range map[string][]string{
		"hook=sync":                  {"evt-s1", "evt-s2", "evt-s3", "evt-s4", "evt-s5", "evt-s6"},
		"hook=gate":                  {"evt-g1"},
		"status=delivered":           {"evt-a1", "evt-m1", "evt-s1", "evt-s6", "evt-t1", "evt-t2"},
		"status=rejected":            {"evt-s2", "evt-s3", "evt-s4", "evt-s5"},
		"status=passed":              {"evt-g1"},
		"status=duplicate":           {"evt-a1"},
		"status=dead":                {},
		"status=queued":              {},
		"hook=sync&status=delivered": {"evt-s1", "evt-s6"},
		"id=evt-a1":                  {"evt-a1", "evt-a1"},
		"q=findme-zeta":              {"evt-s1"},
		"q=EVT-G":                    {"evt-g1"},
		"q=no-such-text-anywhere":    {},
		"hook=nothing-here":          {},
		"since=" + url.QueryEscape(split.Format(time.RFC3339Nano)): {"evt-a1", "evt-a1", "evt-m1", "evt-s6", "evt-t1", "evt-t2"},
		"until=" + url.QueryEscape(split.Format(time.RFC3339Nano)): {"evt-g1", "evt-s1", "evt-s2", "evt-s3", "evt-s4", "evt-s5"},
		"hook=sync&since=" + url.QueryEscape(split.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)): {"evt-s6"},
	} {
		got := names(listLog(t, query), keyName)
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("events?%s: %v, want %v", query, got, want)
		}
	}
	// an empty answer is an empty list, not null
	if code, body := adminGetRaw(t, "/webhook_gateway/events?hook=nothing-here"); code != http.StatusOK || !strings.Contains(body, `"events":[]`) {
		t.Errorf("empty listing: %d %s", code, body)
	}
	for _, bad := range []string{"since=yesterday", "until=2026-13-01T00:00:00Z", "since=2026-12-01", "status=bogus", "limit=0", "limit=x"} {
		code, body := adminGetRaw(t, "/webhook_gateway/events?"+bad)
		name, _, _ := strings.Cut(bad, "=")
		if code != http.StatusBadRequest || !strings.Contains(body, name) {
			t.Errorf("events?%s: %d %s", bad, code, body)
		}
		if (name == "since" || name == "until") && !strings.Contains(body, "RFC 3339") {
			t.Errorf("events?%s: %s does not say what is wanted", bad, body)
		}
	}

	// paging: limit 2 walks the same records in the same order
	var paged []logRecord
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var page logPage
		path := "/webhook_gateway/events?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		adminGet(t, path, &page)
		if len(page.Events) > 2 {
			t.Fatalf("limit 2 gave %d", len(page.Events))
		}
		paged = append(paged, page.Events...)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(paged) != len(all) {
		t.Fatalf("paged %d records, listed %d", len(paged), len(all))
	}
	for i := range paged {
		if paged[i].Key != all[i].Key {
			t.Errorf("page order differs at %d: %s vs %s", i, paged[i].Key, all[i].Key)
		}
	}

	// one record: headers redacted, what was received and what was sent
	s1, raw := recordOf(t, byID["evt-s1"].Key)
	if string(s1.Payload) != `{"petname":"Rex","note":"FindMe-Zeta"}` || string(s1.Sent) != `{"Name":"Rex"}` || s1.PayloadText != nil || s1.SentText != nil {
		t.Errorf("evt-s1 payload %s sent %s", s1.Payload, s1.Sent)
	}
	if s1.Replayable == nil || !*s1.Replayable || s1.Truncated || s1.RemoteIP == "" || s1.ActionName != "pets" {
		t.Errorf("evt-s1 %s", raw)
	}
	if got := s1.Headers["X-Tenant"]; len(got) != 1 || got[0] != "acme" {
		t.Errorf("evt-s1 headers %v", s1.Headers)
	}
	if got := s1.Headers["X-Api-Key"]; len(got) != 1 || got[0] != "[redacted]" {
		t.Errorf("evt-s1 api key header %v", got)
	}
	if strings.Contains(raw, "values") {
		t.Errorf("stored placeholder values shown: %s", raw)
	}
	// a body that is not JSON is shown as text
	s5, _ := recordOf(t, byID["evt-s5"].Key)
	if s5.Payload != nil || s5.PayloadText == nil || *s5.PayloadText != `{"petname":` || s5.Replayable == nil || *s5.Replayable {
		t.Errorf("evt-s5 %+v", s5)
	}
	// an async record: payload as received, no sent (the same bytes)
	a1, _ := recordOf(t, byID["evt-a1"].Key)
	if string(a1.Payload) != `{"a":1}` || a1.Sent != nil || a1.Replayable == nil || !*a1.Replayable {
		t.Errorf("evt-a1 %+v", a1)
	}
	// a body longer than log_body: cut, shown as text, not replayable
	t1, raw := recordOf(t, byID["evt-t1"].Key)
	if !t1.Truncated || t1.Payload != nil || t1.PayloadText == nil || !strings.HasPrefix(`{"longer":"than sixteen bytes"}`, *t1.PayloadText) ||
		len(*t1.PayloadText) > 16 || t1.Replayable == nil || *t1.Replayable {
		t.Errorf("truncated record %s", raw)
	}
	// an async event whose received body did not fit in log_body: what it
	// sends is shown as sent, never as what was received
	t2, raw := recordOf(t, byID["evt-t2"].Key)
	if t2.Truncated || t2.Payload != nil || t2.PayloadText != nil || string(t2.Sent) != `{"L":"than sixteen bytes"}` || t2.Replayable == nil || !*t2.Replayable {
		t.Errorf("async record with a large payload %s", raw)
	}
	// log meta: neither headers nor bodies, though the async body is kept
	m1, raw := recordOf(t, byID["evt-m1"].Key)
	if m1.Headers != nil || m1.Payload != nil || m1.PayloadText != nil || m1.Sent != nil || m1.SentText != nil || strings.Contains(raw, "meta-body-7Kq") {
		t.Errorf("log meta record shows content: %s", raw)
	}
	if m1.Status != "delivered" || len(m1.Attempts) != 1 {
		t.Errorf("log meta record %s", raw)
	}
	// nothing the API answers holds the credential
	for _, r := range all {
		if _, raw := recordOf(t, r.Key); strings.Contains(raw, syncKey) || strings.Contains(raw, "wrong-key-123456") {
			t.Errorf("record %s shows a credential: %s", r.ID, raw)
		}
	}
	if code := adminGet(t, "/webhook_gateway/event?key=nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown key: %d", code)
	}
	var byEventID logPage
	if code := adminGet(t, "/webhook_gateway/event?id=evt-a1", &byEventID); code != http.StatusOK || len(byEventID.Events) != 2 || string(byEventID.Events[0].Payload) != `{"a":1}` {
		t.Errorf("event?id=evt-a1: %d %+v", code, byEventID)
	}

	// hooks with their counts
	var hooks hooksAnswer
	if code := adminGet(t, "/webhook_gateway/hooks", &hooks); code != http.StatusOK {
		t.Fatalf("hooks: %d", code)
	}
	var names []string
	for _, h := range hooks.Hooks {
		names = append(names, h.Name)
		want := map[string]struct {
			mode, log string
			actions   []string
			counts    map[string]int
		}{
			"async":  {"async", "full", []string{"0"}, map[string]int{"delivered": 1, "duplicate": 1}},
			"gate":   {"gate", "full", []string{}, map[string]int{"passed": 1}},
			"meta":   {"async", "meta", []string{"0"}, map[string]int{"delivered": 1}},
			"sync":   {"sync", "full", []string{"pets"}, map[string]int{"delivered": 2, "rejected": 4}},
			"small":  {"sync", "full", []string{"0"}, map[string]int{"delivered": 1}},
			"asmall": {"async", "full", []string{"0"}, map[string]int{"delivered": 1}},
		}[h.Name]
		if h.Mode != want.mode || h.Log != want.log || !slices.Equal(h.Actions, want.actions) || h.Actions == nil {
			t.Errorf("hook %s: %+v", h.Name, h)
		}
		for status, n := range want.counts {
			if h.Raw.Hour[status] != n || h.Raw.Day[status] != n {
				t.Errorf("hook %s %s: hour %d day %d, want %d", h.Name, status, h.Raw.Hour[status], h.Raw.Day[status], n)
			}
		}
		if len(h.Raw.Hour) != len(want.counts) {
			t.Errorf("hook %s counts %v", h.Name, h.Raw.Hour)
		}
	}
	if !slices.Equal(names, []string{"asmall", "async", "gate", "meta", "small", "sync"}) {
		t.Errorf("hooks %v", names)
	}

	// replay: records that were never delivered cannot be
	for _, c := range []struct{ path, want string }{
		{"replay?key=" + url.QueryEscape(byID["evt-s2"].Key), "rejected"},
		{"replay?key=" + url.QueryEscape(byID["evt-a1-dup"].Key), "duplicate"},
		{"replay?id=evt-g1", "passed"},
		{"replay?id=evt-s4&hook=sync", "rejected"},
		{"replay?id=evt-t1", "truncated"},
	} {
		code, body := adminPost(t, "/webhook_gateway/"+c.path)
		if code != http.StatusConflict || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s", c.path, code, body)
		}
	}
	if code, _ := adminPost(t, "/webhook_gateway/replay?key=nope"); code != http.StatusNotFound {
		t.Errorf("replay of an unknown key: %d", code)
	}
	code, body := adminPost(t, "/webhook_gateway/replay?hook=sync&status=dead")
	if code != http.StatusAccepted || string(body) != "{\"replayed\":[],\"skipped\":0}\n" {
		t.Errorf("replay of no dead records: %d %s", code, body)
	}
	// a delivered sync record is sent again by the workers
	before := len(up.requests())
	code, body = adminPost(t, "/webhook_gateway/replay?key="+url.QueryEscape(byID["evt-s1"].Key))
	if code != http.StatusAccepted || !strings.Contains(string(body), byID["evt-s1"].Key) {
		t.Fatalf("replay evt-s1: %d %s", code, body)
	}
	waitFor(t, "the replayed sync record delivered again", func() bool {
		r, _ := recordOf(t, byID["evt-s1"].Key)
		return r.Status == "delivered" && len(r.Attempts) == 2
	})
	reqs := up.requests()
	if len(reqs) != before+1 || string(reqs[len(reqs)-1].body) != `{"Name":"Rex"}` || reqs[len(reqs)-1].header.Get("Idempotency-Key") != "evt-s1" {
		t.Errorf("replayed request: %d requests, last %s %v", len(reqs)-before, reqs[len(reqs)-1].body, reqs[len(reqs)-1].header)
	}
}

func adminGetRaw(t *testing.T, path string) (int, string) {
	t.Helper()
	var raw json.RawMessage
	code := adminGet(t, path, &raw)
	return code, string(raw)
}

// TestRunLogReplaySync: with no async hook and no store in the global
// options, a hook that logs opens the store, the admin API answers, and a
// sync record that went dead while the upstream was down is delivered
// when replayed after it came back.
func TestRunLogReplaySync(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	var down atomic.Bool
	down.Store(true)
	up := newUpstream(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	sites := fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /hook {
		name only-sync
		id_from {header.X-Event-Id}
		forward %s/in {
			retries 0
		}
	}
}
`, up.URL)
	tester := startCaddy(t, sites)
	t.Cleanup(func() { tester.InitServer(withPorts(globalOptions), "caddyfile") })

	if status, _, b := post(t, tester, "/hook", "application/json", http.Header{"X-Event-Id": {"evt-down"}}, []byte(`{"n":1}`)); status != http.StatusBadGateway {
		t.Fatalf("upstream down: %d %s", status, b)
	}
	var dead []logRecord
	waitFor(t, "the dead sync record", func() bool {
		dead = listLog(t, "status=dead")
		return len(dead) == 1
	})
	rec, raw := recordOf(t, dead[0].Key)
	if rec.ID != "evt-down" || rec.Mode != "sync" || rec.Inbound != http.StatusBadGateway || len(rec.Attempts) != 1 || rec.Attempts[0].Status != 503 ||
		rec.Replayable == nil || !*rec.Replayable || string(rec.Payload) != `{"n":1}` {
		t.Fatalf("dead record %s", raw)
	}
	var hooks hooksAnswer
	if code := adminGet(t, "/webhook_gateway/hooks", &hooks); code != http.StatusOK || len(hooks.Hooks) != 1 || hooks.Hooks[0].Name != "only-sync" ||
		hooks.Hooks[0].Mode != "sync" || hooks.Hooks[0].Raw.Hour["dead"] != 1 {
		t.Errorf("hooks: %d %+v", code, hooks)
	}

	down.Store(false)
	code, body := adminPost(t, "/webhook_gateway/replay?hook=only-sync&status=dead")
	if code != http.StatusAccepted || !strings.Contains(string(body), dead[0].Key) {
		t.Fatalf("replay: %d %s", code, body)
	}
	waitFor(t, "the replayed record delivered", func() bool {
		rec, raw = recordOf(t, dead[0].Key)
		return rec.Status == "delivered"
	})
	if len(rec.Attempts) != 2 || rec.Attempts[1].Status != 200 {
		t.Errorf("replayed record %s", raw)
	}
	reqs := up.requests()
	if len(reqs) != 2 || string(reqs[1].body) != `{"n":1}` || reqs[1].header.Get("Idempotency-Key") != "evt-down" {
		t.Errorf("upstream got %d requests, last %s %v", len(reqs), reqs[len(reqs)-1].body, reqs[len(reqs)-1].header)
	}

	// renamed: the old name is still listed, with its records of the day
	tester.InitServer(withPorts(globalOptions+strings.Replace(sites, "name only-sync", "name renamed", 1)), "caddyfile")
	hooks = hooksAnswer{}
	adminGet(t, "/webhook_gateway/hooks", &hooks)
	if len(hooks.Hooks) != 2 || hooks.Hooks[0].Name != "only-sync" || hooks.Hooks[0].Mode != "" || hooks.Hooks[0].Actions == nil ||
		hooks.Hooks[0].Raw.Day["delivered"] != 1 || hooks.Hooks[1].Name != "renamed" || hooks.Hooks[1].Mode != "sync" || hooks.Hooks[1].Raw.Day == nil {
		t.Errorf("hooks after the rename: %+v", hooks)
	}

	// with `log off` and no async hook no store is open: the listings are
	// empty, one record is a 404 that says why
	tester.InitServer(withPorts(globalOptions+strings.Replace(sites, "name only-sync", "name quiet\n\t\tlog off", 1)), "caddyfile")
	if code, body := adminGetRaw(t, "/webhook_gateway/events"); code != http.StatusOK || body != `{"events":[]}` {
		t.Errorf("events with no store: %d %s", code, body)
	}
	if code, body := adminGetRaw(t, "/webhook_gateway/hooks"); code != http.StatusOK ||
		body != `{"hooks":[{"name":"quiet","mode":"sync","log":"off","actions":["0"],"counts":{"hour":{},"day":{}}}]}` {
		t.Errorf("hooks with no store: %d %s", code, body)
	}
	if code, body := adminGetRaw(t, "/webhook_gateway/event?key="+url.QueryEscape(dead[0].Key)); code != http.StatusNotFound || !strings.Contains(body, "log off") {
		t.Errorf("event with no store: %d %s", code, body)
	}
}
