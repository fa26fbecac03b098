package caddymodule

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-webhooks/gateway/queue"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves the event log of async delivery on Caddy's admin
// endpoint, under /webhook_gateway/:
//
//	GET  /webhook_gateway/events?hook=<name>&status=<queued|delivering|delivered|dead>&limit=<n>&cursor=<c>
//	GET  /webhook_gateway/event?hook=<name>&id=<id>        one event with its attempts and payload
//	POST /webhook_gateway/replay?hook=<name>&id=<id>       deliver a dead or delivered event again
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

// store finds the event store of the running config.
func (a *AdminAPI) store() (queue.Store, error) {
	cfgApp, err := caddy.ActiveContext().AppIfConfigured("webhook_gateway")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no webhook_gateway event store is running")}
	}
	app := cfgApp.(*App)
	if app.store == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no webhook_gateway event store is running")}
	}
	return app.store, nil
}

func (a *AdminAPI) listEvents(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	lq := queue.ListQuery{Hook: q.Get("hook"), Status: queue.Status(q.Get("status")), Cursor: q.Get("cursor"), Limit: 50}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("limit must be 1 to 1000")}
		}
		lq.Limit = n
	}
	switch lq.Status {
	case "", queue.StatusQueued, queue.StatusDelivering, queue.StatusDelivered, queue.StatusDead:
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("status must be queued, delivering, delivered or dead")}
	}
	page, err := s.List(r.Context(), lq)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	for _, ev := range page.Events {
		redactHeaders(ev)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (a *AdminAPI) getEvent(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	hook, id := r.URL.Query().Get("hook"), r.URL.Query().Get("id")
	ev, err := s.Get(r.Context(), hook, id)
	if errors.Is(err, queue.ErrNotFound) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such event")}
	}
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	redactHeaders(ev)
	writeJSON(w, http.StatusOK, ev)
	return nil
}

// redactHeaders hides the values of stored outbound headers, which may
// carry the upstream's credentials, and the URL's query; the rest stays
// visible.
func redactHeaders(ev *queue.Event) {
	for k, v := range ev.Header {
		switch k {
		case metaMethod, metaEvent, metaAction:
		case metaURL:
			ev.Header[k] = actionLabel(v)
		default:
			ev.Header[k] = "[redacted]"
		}
	}
}

func (a *AdminAPI) replay(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	hook, id := r.URL.Query().Get("hook"), r.URL.Query().Get("id")
	err = s.Replay(r.Context(), hook, id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such event")}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	}
	writeJSON(w, http.StatusAccepted, acceptedBody{ID: id, Status: string(queue.StatusQueued)})
	return nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
