package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-webhooks/gateway/queue"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves the run log on Caddy's admin endpoint, under
// /webhook_gateway/. Every request that reached a hook is one record (one
// per action of an accepted request in sync and async mode; one for a
// gate, a rejection or a duplicate), addressed by its key; the event id
// (the sender's delivery id) is shared by the records of one request and
// by re-sent copies of it.
//
//	GET  /webhook_gateway/hooks                        the hooks, with counts by status over the last hour and day
//	GET  /webhook_gateway/events?hook=&status=&since=&until=&q=&id=&limit=&cursor=
//	                                                   records, newest first, without headers or bodies
//	GET  /webhook_gateway/event?key=<key>              one record with its headers, payload and attempts
//	GET  /webhook_gateway/event?id=<id>[&hook=]        every record of an event id
//	POST /webhook_gateway/replay?key=<key>             deliver a dead or delivered record again
//	POST /webhook_gateway/replay?id=<id>[&hook=]       ... every replayable record of an event id
//	POST /webhook_gateway/replay?hook=<name>&status=dead  ... every dead record of a hook
//
// since and until are RFC 3339 times (received in [since, until)); q is
// text the event id or the payload contains, in any case. Stored
// placeholder values are never shown (they may carry request headers), nor
// the headers and bodies of hooks whose running config has `log meta` or
// `log off`.
type AdminAPI struct {
	ctx caddy.Context
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_gateway",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision keeps the context to find the running app.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/webhook_gateway/hooks", Handler: caddy.AdminHandlerFunc(a.listHooks)},
		{Pattern: "/webhook_gateway/events", Handler: caddy.AdminHandlerFunc(a.listEvents)},
		{Pattern: "/webhook_gateway/event", Handler: caddy.AdminHandlerFunc(a.getEvent)},
		{Pattern: "/webhook_gateway/replay", Handler: caddy.AdminHandlerFunc(a.replay)},
	}
}

// app finds the webhook_gateway app of the running config; nil when
// there is none.
func (a *AdminAPI) app() *App {
	cfgApp, err := caddy.ActiveContext().AppIfConfigured("webhook_gateway")
	if err != nil {
		return nil
	}
	app, _ := cfgApp.(*App)
	return app
}

// store is the running app's event store, or a 404 when no config opens
// one (no hook logs and none is async).
func (a *AdminAPI) store() (*App, queue.Store, error) {
	app := a.app()
	if app == nil || app.store == nil {
		return nil, nil, apiErr(http.StatusNotFound, "no webhook_gateway event store is running: no hook logs (every one has `log off`) and none is async")
	}
	return app, app.store, nil
}

// Limits of the listing.
const (
	defaultListLimit = 50
	maxListLimit     = 1000
	maxQueryText     = 256
)

// eventView is a record as the listing shows it: no headers, no bodies;
// the action by name when the hook is in the running config; due_at only
// while queued.
type eventView struct {
	Key        string        `json:"key"`
	ID         string        `json:"id"`
	Hook       string        `json:"hook"`
	Mode       string        `json:"mode,omitempty"`
	Action     int           `json:"action"`
	ActionName string        `json:"action_name,omitempty"`
	Status     queue.Status  `json:"status"`
	Inbound    int           `json:"inbound_status,omitempty"`
	Auth       string        `json:"auth,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	Request    string        `json:"request,omitempty"`
	ReceivedAt time.Time     `json:"received_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	DueAt      *time.Time    `json:"due_at,omitempty"`
	Deferrals  int           `json:"deferrals,omitempty"`
	Attempts   []attemptView `json:"attempts"`
}

type attemptView struct {
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}

// eventDetail is one record as /event shows it: the listing's fields,
// the received headers, what the sender sent (payload) and what the
// action sends when it differs (sent), each as JSON when it is JSON,
// else as text.
type eventDetail struct {
	eventView
	RemoteIP    string              `json:"remote_ip,omitempty"`
	Headers     map[string][]string `json:"headers,omitempty"`
	Payload     json.RawMessage     `json:"payload,omitempty"`
	PayloadText *string             `json:"payload_text,omitempty"`
	Sent        json.RawMessage     `json:"sent,omitempty"`
	SentText    *string             `json:"sent_text,omitempty"`
	Truncated   bool                `json:"truncated"`
	Replayable  bool                `json:"replayable"`
	// NotReplayable says why, when Replayable is false.
	NotReplayable string `json:"not_replayable,omitempty"`
	// Hidden says why headers and bodies are left out (the hook's
	// running config logs meta or off).
	Hidden string `json:"hidden,omitempty"`
	// Omitted says why the payload is missing though sent is shown.
	Omitted string `json:"payload_omitted,omitempty"`
}

func (app *App) view(ev *queue.Event) eventView {
	v := eventView{
		Key: ev.Key, ID: ev.ID, Hook: ev.Hook, Mode: ev.Mode, Action: ev.Action, Status: ev.Status,
		Inbound: ev.Inbound, Auth: ev.Auth, Reason: ev.Reason, Request: ev.Request,
		ReceivedAt: ev.ReceivedAt, UpdatedAt: ev.UpdatedAt, Deferrals: ev.Deferrals,
		Attempts: make([]attemptView, len(ev.Attempts)),
	}
	if act := app.handler(ev.Hook).actionAt(ev.Action); act != nil {
		v.ActionName = act.name
	}
	if ev.Status == queue.StatusQueued && !ev.DueAt.IsZero() {
		due := ev.DueAt
		v.DueAt = &due
	}
	for i, at := range ev.Attempts {
		v.Attempts[i] = attemptView{At: at.At, Status: at.Status, LatencyMS: float64(at.Latency.Microseconds()) / 1000, Error: at.Error}
	}
	return v
}

// alwaysRedacted are headers never shown, whatever the record holds.
var alwaysRedacted = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true}

func (app *App) detail(ev *queue.Event) eventDetail {
	d := eventDetail{eventView: app.view(ev), RemoteIP: ev.RemoteIP, Truncated: ev.Truncated}
	d.NotReplayable = notReplayable(ev)
	d.Replayable = d.NotReplayable == ""
	h := app.handler(ev.Hook)
	if h != nil && h.runLog.level != logFull {
		d.Hidden = "the hook logs " + h.runLog.level + ": headers and bodies are not shown"
		return d
	}
	if len(ev.Headers) > 0 {
		// Headers are redacted when recorded; those the running config
		// redacts are redacted again, for records written before it.
		d.Headers = make(map[string][]string, len(ev.Headers))
		for name, vals := range ev.Headers {
			if alwaysRedacted[http.CanonicalHeaderKey(name)] || h != nil && h.runLog.redacted(name) {
				vals = slices.Repeat([]string{redacted}, len(vals))
			}
			d.Headers[name] = vals
		}
	}
	received, sent := ev.Payload, ev.Body
	switch {
	case received != nil:
	case ev.Mode == "async" && h != nil && h.reshapes(ev.Action):
		// an async event keeps the received body only when it fits in
		// log_body; what it holds is the reshaped body it sends
		d.Omitted = "the received payload was larger than log_body and was not kept"
	default:
		received, sent = ev.Body, nil
	}
	d.Payload, d.PayloadText = bodyView(received)
	if sent != nil && string(sent) != string(received) {
		d.Sent, d.SentText = bodyView(sent)
	}
	return d
}

// reshapes reports whether the action sends the reshaped body rather than
// the received one.
func (h *Handler) reshapes(action int) bool {
	return h.program != nil && action >= 0 && action < len(h.actions) && !h.actions[action].original
}

// bodyView shows a body as JSON when it is JSON, else as text.
func bodyView(b []byte) (json.RawMessage, *string) {
	switch {
	case len(b) == 0:
		return nil, nil // nothing kept, or an empty body (a GET callback)
	case json.Valid(b):
		return b, nil
	default:
		text := strings.ToValidUTF8(string(b), "\uFFFD")
		return nil, &text
	}
}

// notReplayable says why a record cannot be delivered again, "" when it
// can.
func notReplayable(ev *queue.Event) string {
	switch ev.Status {
	case queue.StatusRejected:
		why := "the request was refused before it was accepted"
		if ev.Reason != "" {
			why += " (" + ev.Reason + ")"
		}
		return "record " + ev.Key + " is rejected: " + why + ", so there is nothing to deliver"
	case queue.StatusPassed:
		return "record " + ev.Key + " is passed: a gate handed it to the next handler; it has no action to deliver it again"
	case queue.StatusDuplicate:
		return "record " + ev.Key + " is a duplicate: it was not delivered; replay the record it repeats"
	case queue.StatusQueued, queue.StatusDelivering:
		return "record " + ev.Key + " is " + string(ev.Status) + " already"
	}
	switch {
	case ev.Action < 0:
		return "record " + ev.Key + " has no action to deliver it"
	case ev.Truncated:
		return "record " + ev.Key + " is truncated: its body was cut at log_body, so it cannot be sent again as received"
	case len(ev.Body) == 0:
		return "record " + ev.Key + " has no body kept (the hook logged meta), so it cannot be sent again"
	case !queue.Replayable(ev):
		return "record " + ev.Key + ": " + queue.ErrNotReplayable.Error()
	}
	return ""
}

func apiErr(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg)}
}

func internalErr(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
}

// runLogHook is one hook of /hooks.
type runLogHook struct {
	Name    string     `json:"name"`
	Mode    string     `json:"mode"`
	Log     string     `json:"log"`
	Actions []string   `json:"actions"`
	Counts  hookCounts `json:"counts"`
}

type hookCounts struct {
	Hour map[queue.Status]int `json:"hour"`
	Day  map[queue.Status]int `json:"day"`
}

type hooksBody struct {
	Hooks []runLogHook `json:"hooks"`
}

func (a *AdminAPI) listHooks(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	out := hooksBody{Hooks: []runLogHook{}}
	app := a.app()
	if app == nil {
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	var hour, day map[string]map[queue.Status]int
	if app.store != nil {
		now := app.now()
		var err error
		if hour, err = app.store.Counts(r.Context(), now.Add(-time.Hour)); err != nil {
			return internalErr(err)
		}
		if day, err = app.store.Counts(r.Context(), now.Add(-24*time.Hour)); err != nil {
			return internalErr(err)
		}
	}
	byName := map[string]*runLogHook{}
	for _, h := range app.configured() {
		v := &runLogHook{Name: h.name, Mode: h.mode(), Log: h.runLog.level, Actions: make([]string, len(h.actions))}
		for i, act := range h.actions {
			v.Actions[i] = act.name
		}
		byName[h.name] = v
	}
	for name := range day {
		if byName[name] == nil {
			byName[name] = &runLogHook{Name: name, Actions: []string{}}
		}
	}
	for name, v := range byName {
		v.Counts = hookCounts{Hour: nonNil(hour[name]), Day: nonNil(day[name])}
		out.Hooks = append(out.Hooks, *v)
	}
	sort.Slice(out.Hooks, func(i, j int) bool { return out.Hooks[i].Name < out.Hooks[j].Name })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func nonNil(m map[queue.Status]int) map[queue.Status]int {
	if m == nil {
		return map[queue.Status]int{}
	}
	return m
}

// configured lists the handlers of the running config.
func (a *App) configured() []*Handler {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*Handler, 0, len(a.hooks))
	for _, h := range a.hooks {
		out = append(out, h)
	}
	return out
}

// mode is how the hook answers: sync, async, or gate (no action).
func (h *Handler) mode() string {
	switch {
	case len(h.actions) == 0:
		return "gate"
	case h.async:
		return "async"
	}
	return "sync"
}

type listBody struct {
	Events []eventView `json:"events"`
	Next   string      `json:"next,omitempty"`
}

type detailsBody struct {
	Events []eventDetail `json:"events"`
}

// listQuery reads the listing's filters; bad ones are 400s that say what
// is wanted.
func listQuery(r *http.Request) (queue.ListQuery, error) {
	q := r.URL.Query()
	lq := queue.ListQuery{Hook: q.Get("hook"), Status: queue.Status(q.Get("status")), ID: q.Get("id"), Q: q.Get("q"), Cursor: q.Get("cursor"), Limit: defaultListLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return lq, apiErr(http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", maxListLimit))
		}
		lq.Limit = n
	}
	if err := checkStatus(lq.Status); err != nil {
		return lq, err
	}
	if len(lq.Q) > maxQueryText {
		return lq, apiErr(http.StatusBadRequest, fmt.Sprintf("q must be at most %d bytes", maxQueryText))
	}
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"since", &lq.Since}, {"until", &lq.Until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return lq, apiErr(http.StatusBadRequest, fmt.Sprintf("%s %q is not an RFC 3339 time; want e.g. 2006-01-02T15:04:05Z or 2006-01-02T15:04:05+02:00", p.name, v))
		}
		*p.into = t
	}
	if !lq.Since.IsZero() && !lq.Until.IsZero() && !lq.Since.Before(lq.Until) {
		return lq, apiErr(http.StatusBadRequest, "since must be before until")
	}
	return lq, nil
}

var listableStatuses = []queue.Status{
	queue.StatusQueued, queue.StatusDelivering, queue.StatusDelivered, queue.StatusDead,
	queue.StatusRejected, queue.StatusPassed, queue.StatusDuplicate,
}

func checkStatus(s queue.Status) error {
	if s == "" {
		return nil
	}
	names := make([]string, len(listableStatuses))
	for i, known := range listableStatuses {
		if s == known {
			return nil
		}
		names[i] = string(known)
	}
	return apiErr(http.StatusBadRequest, "status must be one of "+strings.Join(names, ", "))
}

func (a *AdminAPI) listEvents(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	lq, err := listQuery(r)
	if err != nil {
		return err
	}
	app := a.app()
	if app == nil || app.store == nil {
		writeJSON(w, http.StatusOK, listBody{Events: []eventView{}})
		return nil
	}
	page, err := app.store.List(r.Context(), lq)
	if err != nil {
		return internalErr(err)
	}
	out := listBody{Events: make([]eventView, 0, len(page.Events)), Next: page.Next}
	for _, ev := range page.Events {
		out.Events = append(out.Events, app.view(ev))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// byID reads every record of an event id (optionally of one hook), with
// bodies, newest first; at most maxByID.
const maxByID = 1000

func byID(ctx context.Context, s queue.Store, hook, id string) ([]*queue.Event, error) {
	var out []*queue.Event
	cursor := ""
	for {
		page, err := s.List(ctx, queue.ListQuery{Hook: hook, ID: id, Cursor: cursor, Limit: 100})
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			full, err := s.Get(ctx, ev.Key)
			if errors.Is(err, queue.ErrNotFound) {
				continue // purged meanwhile
			}
			if err != nil {
				return nil, err
			}
			out = append(out, full)
		}
		if page.Next == "" || len(out) >= maxByID {
			return out, nil
		}
		cursor = page.Next
	}
}

func (a *AdminAPI) getEvent(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	q := r.URL.Query()
	if q.Get("key") == "" && q.Get("id") == "" {
		return apiErr(http.StatusBadRequest, "give key=<record key> or id=<event id>")
	}
	app, store, err := a.store()
	if err != nil {
		return err
	}
	if key := q.Get("key"); key != "" {
		ev, err := store.Get(r.Context(), key)
		if errors.Is(err, queue.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no such event")
		}
		if err != nil {
			return internalErr(err)
		}
		writeJSON(w, http.StatusOK, app.detail(ev))
		return nil
	}
	evs, err := byID(r.Context(), store, q.Get("hook"), q.Get("id"))
	if err != nil {
		return internalErr(err)
	}
	if len(evs) == 0 {
		return apiErr(http.StatusNotFound, "no such event")
	}
	out := detailsBody{Events: make([]eventDetail, 0, len(evs))}
	for _, ev := range evs {
		out.Events = append(out.Events, app.detail(ev))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type replayBody struct {
	Replayed []string `json:"replayed"` // keys of the records queued again
	Skipped  int      `json:"skipped"`  // records that cannot be replayed
}

// replayOne queues one record again; the error is a 409 that says why
// when it cannot be.
func replayOne(ctx context.Context, s queue.Store, ev *queue.Event) error {
	if why := notReplayable(ev); why != "" {
		return apiErr(http.StatusConflict, why)
	}
	err := s.Replay(ctx, ev.Key)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return apiErr(http.StatusNotFound, "no such event")
	case errors.Is(err, queue.ErrNotReplayable):
		return apiErr(http.StatusConflict, "record "+ev.Key+": "+err.Error())
	case err != nil:
		return internalErr(err)
	}
	return nil
}

// conflict reports whether err says the record cannot be replayed (409)
// or is gone meanwhile (404), as opposed to a failure of the store.
func conflict(err error) bool {
	var ae caddy.APIError
	return errors.As(err, &ae) && (ae.HTTPStatus == http.StatusConflict || ae.HTTPStatus == http.StatusNotFound)
}

func (a *AdminAPI) replay(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	q := r.URL.Query()
	switch {
	case q.Get("key") != "", q.Get("id") != "", q.Get("hook") != "" && q.Get("status") == string(queue.StatusDead):
	default:
		return apiErr(http.StatusBadRequest, "give key=<record key>, id=<event id>, or hook=<name>&status=dead")
	}
	app, store, err := a.store()
	if err != nil {
		return err
	}
	ctx := r.Context()
	out := replayBody{Replayed: []string{}}
	switch {
	case q.Get("key") != "":
		ev, err := store.Get(ctx, q.Get("key"))
		if errors.Is(err, queue.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no such event")
		}
		if err != nil {
			return internalErr(err)
		}
		if err := replayOne(ctx, store, ev); err != nil {
			return err
		}
		out.Replayed = append(out.Replayed, ev.Key)
	case q.Get("id") != "":
		evs, err := byID(ctx, store, q.Get("hook"), q.Get("id"))
		if err != nil {
			return internalErr(err)
		}
		if len(evs) == 0 {
			return apiErr(http.StatusNotFound, "no such event")
		}
		var why []string
		for _, ev := range evs {
			err := replayOne(ctx, store, ev)
			switch {
			case err == nil:
				out.Replayed = append(out.Replayed, ev.Key)
			case conflict(err):
				out.Skipped++
				why = append(why, err.Error())
			default:
				return err
			}
		}
		if len(out.Replayed) == 0 {
			return apiErr(http.StatusConflict, strings.Join(why, "; "))
		}
	default:
		// Pages follow the cursor, so records replayed (queued again) do
		// not shift the pages still to come.
		cursor := ""
		for {
			page, err := store.List(ctx, queue.ListQuery{Hook: q.Get("hook"), Status: queue.StatusDead, Cursor: cursor, Limit: 200})
			if err != nil {
				return internalErr(err)
			}
			for _, listed := range page.Events {
				ev, err := store.Get(ctx, listed.Key)
				if errors.Is(err, queue.ErrNotFound) {
					continue // purged meanwhile
				}
				if err != nil {
					return internalErr(err)
				}
				if ev.Status != queue.StatusDead {
					continue // replayed meanwhile
				}
				err = replayOne(ctx, store, ev)
				switch {
				case err == nil:
					out.Replayed = append(out.Replayed, ev.Key)
				case conflict(err):
					out.Skipped++
				default:
					return err
				}
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	app.notify()
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
