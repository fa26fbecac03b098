package caddymodule

import (
	"strings"
	"testing"
)

func TestAcceptContentType(t *testing.T) {
	h := &Handler{}
	var err error
	h.accepted, err = parseMediaRanges([]string{"application/json", "application/*+json"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		header     string
		formOn     bool
		ok, isForm bool
	}{
		{"application/json", false, true, false},
		{"Application/JSON", false, true, false},
		{"application/json; charset=utf-8", false, true, false},
		{`application/json;charset="UTF-8"`, false, true, false},
		{"application/json; charset=utf8; foo=bar", false, true, false},
		{"application/vnd.github+json", false, true, false},
		{"application/cloudevents+json; charset=utf-8", false, true, false},
		{"application/json; charset=iso-8859-1", false, false, false},
		{"application/+json", false, false, false},
		{"application/jsonp", false, false, false},
		{"application/json-seq", false, false, false},
		{"text/json", false, false, false},
		{"text/plain", false, false, false},
		{"", false, false, false},
		{"application", false, false, false},
		{"application/json/x", false, false, false},
		{"application/x-www-form-urlencoded", false, false, false},
		{"application/x-www-form-urlencoded", true, true, true},
		{"Application/X-WWW-Form-Urlencoded; charset=utf-8", true, true, true},
	}
	for _, tc := range cases {
		h.FormPayload = tc.formOn
		form, ok := h.acceptContentType(tc.header)
		if ok != tc.ok || form != tc.isForm {
			t.Errorf("%q (form_payload %v): ok=%v form=%v, want ok=%v form=%v", tc.header, tc.formOn, ok, form, tc.ok, tc.isForm)
		}
	}
}

func TestParseMediaRangesRejects(t *testing.T) {
	for _, bad := range []string{"json", "*/*", "application/", "/json", "application/js*n", "application/json; charset=utf-8"} {
		if _, err := parseMediaRanges([]string{bad}); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	cases := []struct {
		doc     string
		wantErr string // "" = valid
	}{
		{`{"a":1}`, ""},
		{`[1,2,{"b":null}]`, ""},
		{` "text" `, ""},
		{`{"a":1,"a":2}`, ""}, // duplicate keys are valid JSON
		{`{"n":123456789012345678901234567890e999}`, ""}, // beyond float64, still JSON
		{`{"s":"caf\u00e9 ☕"}`, ""},
		{``, "empty"},
		{"  \n", "empty"},
		{`{"a":1} x`, "byte 8"},
		{`{"a":1}{"b":2}`, "byte"},
		{`{"a": tru}`, "byte"},
		{`{"a":1`, "byte"},
		{"\xef\xbb\xbf{\"a\":1}", "byte 0"},
		{"{\"a\":\"\xff\"}", "not UTF-8"},
		{strings.Repeat("[", 600) + strings.Repeat("]", 600), "nested deeper"},
		{`{"s":"[[[[[[[["}`, ""},
	}
	for _, tc := range cases {
		err := checkJSON([]byte(tc.doc))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%.40q: unexpected error %v", tc.doc, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%.40q: accepted", tc.doc)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("%.40q: error %q, want it to mention %q", tc.doc, err, tc.wantErr)
		}
	}
	// 100,000 levels: refused without deep recursion
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	if err := checkJSON([]byte(deep)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep document: %v", err)
	}
}

func TestUsableID(t *testing.T) {
	for id, want := range map[string]bool{
		"72d3162e-cc78-11e3-81ab-4c9367dc0958": true,
		"evt_1NG8Du2eZvKYlo2CUI79vXWy":         true,
		"":                                     false,
		"a b":                                  false,
		"a\r\nX-Injected: 1":                   false,
		"caf\u00e9":                            false,
		strings.Repeat("a", maxIDLength):       true,
		strings.Repeat("a", maxIDLength+1):     false,
	} {
		if got := usableID(id); got != want {
			t.Errorf("usableID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestHeaderSafe(t *testing.T) {
	if got := headerSafe("a\r\nX-Evil: 1\x00\tb"); got != "aX-Evil: 1\tb" {
		t.Errorf("headerSafe = %q", got)
	}
	if got := headerSafe("plain value"); got != "plain value" {
		t.Errorf("headerSafe changed a clean value: %q", got)
	}
}
