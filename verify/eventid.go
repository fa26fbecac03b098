package verify

import (
	"net/http"
	"strings"
)

// EventID is the delivery id a preset's sender puts on a request: its id
// header, or that header's alias when the canonical one is absent (Svix
// senders send svix-id where Standard Webhooks says webhook-id), read the
// same way the verifier reads the preset's other headers. "" when the
// method has no id header or the request carries none.
func EventID(method string, h http.Header) string {
	p, ok := presets[method]
	if !ok || p.IDHeader == "" {
		return ""
	}
	if v := h.Get(p.IDHeader); v != "" {
		return v
	}
	if alias, ok := p.Aliases[strings.ToLower(p.IDHeader)]; ok {
		return h.Get(alias)
	}
	return ""
}

// IDHeaders lists the headers EventID reads for a method, canonical first.
func IDHeaders(method string) []string {
	p, ok := presets[method]
	if !ok || p.IDHeader == "" {
		return nil
	}
	out := []string{p.IDHeader}
	if alias, ok := p.Aliases[strings.ToLower(p.IDHeader)]; ok {
		out = append(out, alias)
	}
	return out
}
