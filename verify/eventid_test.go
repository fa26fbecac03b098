package verify_test

import (
	"net/http"
	"testing"

	"github.com/caddy-webhooks/gateway/verify"
)

// Every preset with a delivery id header yields the event id from that
// header and from each alias the verifier accepts for it (svix-id for
// webhook-id), so deduplication and Idempotency-Key hold across a
// sender's retries whichever header family it uses.
func TestEventIDEveryPreset(t *testing.T) {
	withID := 0
	for _, name := range verify.Presets() {
		p, _ := verify.Lookup(name)
		if p.IDHeader == "" {
			if got := verify.EventID(name, http.Header{"X-Anything": {"x"}}); got != "" {
				t.Errorf("%s has no id header but EventID = %q", name, got)
			}
			continue
		}
		withID++
		headers := verify.IDHeaders(name)
		if len(headers) == 0 || headers[0] != p.IDHeader {
			t.Fatalf("%s: IDHeaders = %v, want %s first", name, headers, p.IDHeader)
		}
		for _, h := range headers {
			req := http.Header{}
			req.Set(h, "delivery-"+name)
			if got := verify.EventID(name, req); got != "delivery-"+name {
				t.Errorf("%s: id in %s read as %q", name, h, got)
			}
		}
		// the canonical header wins over an alias
		if len(headers) > 1 {
			req := http.Header{}
			req.Set(headers[0], "canonical")
			req.Set(headers[1], "alias")
			if got := verify.EventID(name, req); got != "canonical" {
				t.Errorf("%s: both headers sent, got %q", name, got)
			}
		}
		if got := verify.EventID(name, http.Header{}); got != "" {
			t.Errorf("%s: no header, got %q", name, got)
		}
	}
	for _, svixSender := range []string{"svix", "clerk", "resend", "standard"} {
		if got := verify.EventID(svixSender, http.Header{"Svix-Id": {"msg_1"}}); got != "msg_1" {
			t.Errorf("%s: svix-id read as %q", svixSender, got)
		}
	}
	if withID < 20 {
		t.Errorf("only %d presets with an id header; the registry looks wrong", withID)
	}
}
