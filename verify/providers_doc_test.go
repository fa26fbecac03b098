package verify_test

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-webhooks/gateway/verify"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/providers.md from the preset registry")

// oracles names, per preset, what its tests check it against besides the
// signer written from the provider's documentation in the case table, and
// in parentheses the tests that do it (checked by TestProvidersDoc).
var oracles = map[string]string{
	"github":   "SDK: go-github `ValidateSignature`, and GitHub's published example (TestGitHubOracle)",
	"stripe":   "SDK: stripe-go `webhook.GenerateTestSignedPayload` and `ValidatePayloadWithTolerance` (TestStripeSDK)",
	"standard": "SDK: Standard Webhooks Go library and svix-webhooks (TestStandardWebhooksLibraries)",
	"svix":     "SDK: svix-webhooks and the Standard Webhooks Go library (TestStandardWebhooksLibraries)",
	"slack":    "SDK: slack-go `SecretsVerifier` (TestSlackOracle), and Slack's published example (TestPublishedVectors)",
	"paddle":   "SDK: paddle-go-sdk `WebhookVerifier` (TestPaddleOracle)",
}

// documentedOnly is the label of a preset checked only by the signer the
// tests write from our reading of the provider's documentation.
const documentedOnly = "documented algorithm (TestPresets)"

// TestProvidersDoc keeps docs/providers.md equal to the registry: run
// `go test ./verify -run TestProvidersDoc -update` after adding a preset.
func TestProvidersDoc(t *testing.T) {
	cases := map[string]presetCase{}
	for _, tc := range append(presetCases[:len(presetCases):len(presetCases)], extraCases...) {
		cases[tc.name] = tc
	}
	var b bytes.Buffer
	names := verify.Presets()
	sdk, vectors := 0, 0
	for _, name := range names {
		o := oracleOf(name, cases)
		switch {
		case strings.HasPrefix(o, "SDK"):
			sdk++
		case strings.HasPrefix(o, "vectors"):
			vectors++
		}
	}
	fmt.Fprintf(&b, "# Provider presets\n\n")
	fmt.Fprintf(&b, "Generated from the registry in `verify/` by `go test ./verify -run TestProvidersDoc -update`; do not edit by hand.\n\n")
	fmt.Fprintf(&b, "`auth <preset> <secret...>` verifies a provider's signature over the exact bytes received. ")
	fmt.Fprintf(&b, "Timestamped schemes accept a clock skew of `tolerance` (default 5m) in both directions. ")
	fmt.Fprintf(&b, "The id header feeds `{http.webhook_gateway.id}` and `deduplicate`.\n\n")
	fmt.Fprintf(&b, "%d presets: %d checked against the provider's own SDK, %d against published test vectors, %d against the documented algorithm implemented independently in the tests.\n\n",
		len(names), sdk, vectors, len(names)-sdk-vectors)
	var alone []string
	for _, name := range names {
		if oracleOf(name, cases) == documentedOnly {
			alone = append(alone, "`"+name+"`")
		}
	}
	fmt.Fprintf(&b, "These %d rest on our reading of the providers' documentation alone (no SDK or published example checks them; a misreading of the docs would go unnoticed): %s.\n\n",
		len(alone), strings.Join(alone, ", "))
	fmt.Fprintf(&b, "The name in parentheses in \"checked against\" is the test that does the check.\n\n")
	fmt.Fprintf(&b, "| preset | signature header | algorithm | signed content | encoding | timestamp | id header | checked against | source |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range names {
		p, _ := verify.Lookup(name)
		alg := p.Algorithm
		switch alg {
		case "token":
			alg = "shared token (constant-time compare)"
		case "ed25519":
			alg = "Ed25519 public key"
		case "ecdsa-p256":
			alg = "ECDSA P-256 public key"
		default:
			alg = "HMAC-" + strings.ToUpper(alg)
		}
		signed := p.Signed
		if signed == "" && p.Algorithm != "token" {
			signed = "{body}"
		}
		enc := p.Encoding
		if p.Prefix != "" {
			enc += " after `" + p.Prefix + "`"
		}
		ts := "—"
		switch {
		case p.TimestampHeader != "":
			ts = "`" + p.TimestampHeader + "`"
		case strings.Contains(p.Signed, "{timestamp}"):
			ts = "in the signature header"
		}
		header := "`" + p.SignatureHeader + "`"
		for _, alias := range sortedValues(p.Aliases) {
			if strings.EqualFold(p.SignatureHeader, alias.k) {
				header += " or `" + alias.v + "`"
			}
		}
		notes := ""
		if p.Notes != "" {
			notes = " " + p.Notes
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s | [docs](%s)%s |\n",
			name, header, alg, code(signed), orDash(enc), ts, orDash(code(p.IDHeader)), oracleOf(name, cases), p.Docs, notes)
	}
	const path = "../docs/providers.md"
	if *updateDocs {
		if err := os.MkdirAll("../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("docs/providers.md is not up to date (%v): run go test ./verify -run TestProvidersDoc -update", err)
	}
}

func oracleOf(name string, cases map[string]presetCase) string {
	if o, ok := oracles[name]; ok {
		return o
	}
	if o := cases[name].oracle; o != "" {
		return o
	}
	return documentedOnly
}

type kv struct{ k, v string }

func sortedValues(m map[string]string) []kv {
	var out []kv
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].k < out[i].k {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// TestOracleLabels ties each "checked against" label to tests: the label
// names at least one test in parentheses; every named test is a function
// of this package's test files that covers the preset (its source names
// the preset, or a case table it reads does); and for an "SDK:" label one
// of them calls a package from outside this module and the standard
// library.
func TestOracleLabels(t *testing.T) {
	src := parseTests(t)
	cases := map[string]presetCase{}
	for _, tc := range append(presetCases[:len(presetCases):len(presetCases)], extraCases...) {
		cases[tc.name] = tc
	}
	named := regexp.MustCompile(`\(([^()]*)\)`)
	for _, name := range verify.Presets() {
		label := oracleOf(name, cases)
		var tests []string
		for _, m := range named.FindAllStringSubmatch(label, -1) {
			for _, part := range strings.Split(m[1], ",") {
				if part = strings.TrimSpace(part); strings.HasPrefix(part, "Test") && !strings.ContainsAny(part, " .") {
					tests = append(tests, part)
				}
			}
		}
		if len(tests) == 0 {
			t.Errorf("%s: label %q names no test", name, label)
			continue
		}
		sdk := false
		for _, test := range tests {
			fn, ok := src.funcs[test]
			if !ok {
				t.Errorf("%s: label %q names %s, which is not a test of this package", name, label, test)
				continue
			}
			if !src.covers(fn, name) {
				t.Errorf("%s: %s does not cover the preset (its source and the tables it reads never name %q)", name, test, name)
			}
			sdk = sdk || src.callsThirdParty(fn)
		}
		if strings.HasPrefix(label, "SDK") && !sdk {
			t.Errorf("%s: label %q, but none of %v calls a third-party package", name, label, tests)
		}
	}
}

// testSource is the parsed test files of this package.
type testSource struct {
	fset  *token.FileSet
	text  map[string][]byte // file name -> source
	funcs map[string]*ast.FuncDecl
	files map[*ast.FuncDecl]*ast.File
	vars  map[string]ast.Node // package-level var -> its spec
	feeds map[string][]string // var -> vars appended to it in init functions
}

func parseTests(t *testing.T) *testSource {
	t.Helper()
	s := &testSource{
		fset:  token.NewFileSet(),
		text:  map[string][]byte{},
		funcs: map[string]*ast.FuncDecl{},
		files: map[*ast.FuncDecl]*ast.File{},
		vars:  map[string]ast.Node{},
		feeds: map[string][]string{},
	}
	names, err := filepath.Glob("*_test.go")
	if err != nil || len(names) == 0 {
		t.Fatalf("no test files (%v)", err)
	}
	for _, fname := range names {
		b, err := os.ReadFile(fname)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(s.fset, fname, b, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		s.text[fname] = b
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv != nil {
					continue
				}
				if d.Name.Name == "init" {
					// extraCases = append(extraCases, moreCases...)
					ast.Inspect(d, func(n ast.Node) bool {
						if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
							if to, ok := as.Lhs[0].(*ast.Ident); ok {
								ast.Inspect(as.Rhs[0], func(n ast.Node) bool {
									if id, ok := n.(*ast.Ident); ok && id.Name != to.Name {
										s.feeds[to.Name] = append(s.feeds[to.Name], id.Name)
									}
									return true
								})
							}
						}
						return true
					})
					continue
				}
				s.funcs[d.Name.Name] = d
				s.files[d] = f
			case *ast.GenDecl:
				if d.Tok != token.VAR {
					continue
				}
				for _, spec := range d.Specs {
					for _, id := range spec.(*ast.ValueSpec).Names {
						s.vars[id.Name] = spec
					}
				}
			}
		}
	}
	return s
}

func (s *testSource) source(n ast.Node) string {
	from, to := s.fset.Position(n.Pos()), s.fset.Position(n.End())
	return string(s.text[from.Filename][from.Offset:to.Offset])
}

// covers reports whether fn names preset as a string, or reads a
// package-level var (a case table) that does, directly or through what
// init functions append to it.
func (s *testSource) covers(fn *ast.FuncDecl, preset string) bool {
	quoted := strconv.Quote(preset)
	if strings.Contains(s.source(fn), quoted) {
		return true
	}
	seen := map[string]bool{}
	var inVar func(name string) bool
	inVar = func(name string) bool {
		spec, ok := s.vars[name]
		if !ok || seen[name] {
			return false
		}
		seen[name] = true
		if strings.Contains(s.source(spec), quoted) {
			return true
		}
		for _, fed := range s.feeds[name] {
			if inVar(fed) {
				return true
			}
		}
		return false
	}
	found := false
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && !found {
			found = inVar(id.Name)
		}
		return !found
	})
	return found
}

// callsThirdParty reports whether fn uses a package imported from outside
// the standard library and this module.
func (s *testSource) callsThirdParty(fn *ast.FuncDecl) bool {
	thirdParty := map[string]bool{}
	for _, imp := range s.files[fn].Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if !strings.Contains(strings.Split(p, "/")[0], ".") || strings.HasPrefix(p, "github.com/caddy-webhooks/gateway") {
			continue
		}
		if imp.Name != nil {
			thirdParty[imp.Name.Name] = true
			continue
		}
		// the package name, by the usual conventions: .../go-github/v84
		// is github, .../mailgun-go/v4 is mailgun
		name := path.Base(p)
		if strings.HasPrefix(name, "v") && strings.Trim(name[1:], "0123456789") == "" {
			name = path.Base(path.Dir(p))
		}
		thirdParty[strings.TrimSuffix(strings.TrimPrefix(name, "go-"), "-go")] = true
	}
	found := false
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && thirdParty[id.Name] {
				found = true
			}
		}
		return !found
	})
	return found
}
