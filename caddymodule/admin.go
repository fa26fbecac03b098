package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-webhooks/gateway/queue"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves the event log of async delivery on Caddy's admin
// endpoint, under /webhook_gateway/. Each stored record is one action of
// one accepted request, addressed by its key; the event id (the sender's
// delivery id) is shared by the records of one request and by re-sent
// copies of it.
//
//	GET  /webhook_gateway/events?hook=&status=&id=&limit=&cursor=   records, newest first, bodies left out
//	GET  /webhook_gateway/event?key=<key>                           one record with its attempts and body
//	GET  /webhook_gateway/event?id=<id>[&hook=]                     every record of an event id, with bodies
//	POST /webhook_gateway/replay?key=<key>                          deliver a dead or delivered record again
//	POST /webhook_gateway/replay?id=<id>[&hook=]                    ... every finished record of an event id
//	POST /webhook_gateway/replay?hook=<name>&status=dead            ... every dead record of a hook
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
		{Pattern: "/webhook_gateway/events", Handler: caddy.AdminHandlerFunc(a.listEvents)},
		{Pattern: "/webhook_gateway/event", Handler: caddy.AdminHandlerFunc(a.getEvent)},
		{Pattern: "/webhook_gateway/replay", Handler: caddy.AdminHandlerFunc(a.replay)},
	}
}

// app finds the webhook_gateway app of the running config.
func (a *AdminAPI) app() (*App, error) {
	cfgApp, err := caddy.ActiveContext().AppIfConfigured("webhook_gateway")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no webhook_gateway event store is running")}
	}
	app := cfgApp.(*App)
	if app.store == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no webhook_gateway event store is running")}
	}
	return app, nil
}

// eventView is a stored record as the admin API shows it: the body as
// JSON when it is JSON, else as text; the action by name when the hook is
// in the running config; due_at only while queued. Stored placeholder
// values are not shown: they may carry request headers, and a
// request-reply event's callback URL and secret id.
type eventView struct {
	Key        string          `json:"key"`
	ID         string          `json:"id"`
	Hook       string          `json:"hook"`
	Action     int             `json:"action"`
	ActionName string          `json:"action_name,omitempty"`
	Status     queue.Status    `json:"status"`
	ReceivedAt time.Time       `json:"received_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	DueAt      *time.Time      `json:"due_at,omitempty"`
	Deferrals  int             `json:"deferrals,omitempty"`
	Attempts   []attemptView   `json:"attempts"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Text       *string         `json:"payload_text,omitempty"`
}

type attemptView struct {
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}

func (app *App) view(ev *queue.Event) eventView {
	v := eventView{
		Key: ev.Key, ID: ev.ID, Hook: ev.Hook, Action: ev.Action, Status: ev.Status,
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
	switch {
	case ev.Body == nil:
	case json.Valid(ev.Body):
		v.Payload = ev.Body
	default:
		text := strings.ToValidUTF8(string(ev.Body), "\uFFFD")
		v.Text = &text
	}
	return v
}

type listBody struct {
	Events []eventView `json:"events"`
	Next   string      `json:"next,omitempty"`
}

func apiErr(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg)}
}

func (a *AdminAPI) listEvents(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	app, err := a.app()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	lq := queue.ListQuery{Hook: q.Get("hook"), Status: queue.Status(q.Get("status")), ID: q.Get("id"), Cursor: q.Get("cursor"), Limit: 50}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return apiErr(http.StatusBadRequest, "limit must be 1 to 1000")
		}
		lq.Limit = n
	}
	if err := checkStatus(lq.Status); err != nil {
		return err
	}
	page, err := app.store.List(r.Context(), lq)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	out := listBody{Events: make([]eventView, 0, len(page.Events)), Next: page.Next}
	for _, ev := range page.Events {
		out.Events = append(out.Events, app.view(ev))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func checkStatus(s queue.Status) error {
	switch s {
	case "", queue.StatusQueued, queue.StatusDelivering, queue.StatusDelivered, queue.StatusDead:
		return nil
	}
	return apiErr(http.StatusBadRequest, "status must be queued, delivering, delivered or dead")
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
	app, err := a.app()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	switch {
	case q.Get("key") != "":
		ev, err := app.store.Get(r.Context(), q.Get("key"))
		if errors.Is(err, queue.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no such event")
		}
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		writeJSON(w, http.StatusOK, app.view(ev))
	case q.Get("id") != "":
		evs, err := byID(r.Context(), app.store, q.Get("hook"), q.Get("id"))
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		if len(evs) == 0 {
			return apiErr(http.StatusNotFound, "no such event")
		}
		out := listBody{Events: make([]eventView, 0, len(evs))}
		for _, ev := range evs {
			out.Events = append(out.Events, app.view(ev))
		}
		writeJSON(w, http.StatusOK, out)
	default:
		return apiErr(http.StatusBadRequest, "give key=<record key> or id=<event id>")
	}
	return nil
}

type replayBody struct {
	Replayed []string `json:"replayed"` // keys of the records queued again
	Skipped  int      `json:"skipped,omitempty"`
}

func (a *AdminAPI) replay(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed")
	}
	app, err := a.app()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	ctx := r.Context()
	out := replayBody{Replayed: []string{}}
	switch {
	case q.Get("key") != "":
		err := app.store.Replay(ctx, q.Get("key"))
		switch {
		case errors.Is(err, queue.ErrNotFound):
			return apiErr(http.StatusNotFound, "no such event")
		case errors.Is(err, queue.ErrNotReplayable):
			return apiErr(http.StatusConflict, err.Error())
		case err != nil:
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		out.Replayed = append(out.Replayed, q.Get("key"))
	case q.Get("id") != "":
		evs, err := byID(ctx, app.store, q.Get("hook"), q.Get("id"))
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		if len(evs) == 0 {
			return apiErr(http.StatusNotFound, "no such event")
		}
		for _, ev := range evs {
			if err := app.store.Replay(ctx, ev.Key); err != nil {
				out.Skipped++
				continue
			}
			out.Replayed = append(out.Replayed, ev.Key)
		}
		if len(out.Replayed) == 0 {
			return apiErr(http.StatusConflict, queue.ErrNotReplayable.Error())
		}
	case q.Get("hook") != "" && q.Get("status") == string(queue.StatusDead):
		// Replayed records become queued, so each page starts afresh.
		for {
			page, err := app.store.List(ctx, queue.ListQuery{Hook: q.Get("hook"), Status: queue.StatusDead, Limit: 200})
			if err != nil {
				return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
			}
			n := 0
			for _, ev := range page.Events {
				if err := app.store.Replay(ctx, ev.Key); err != nil {
					out.Skipped++
					continue
				}
				n++
				out.Replayed = append(out.Replayed, ev.Key)
			}
			if n == 0 || page.Next == "" && n == len(page.Events) {
				break
			}
		}
	default:
		return apiErr(http.StatusBadRequest, "give key=<record key>, id=<event id>, or hook=<name>&status=dead")
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
