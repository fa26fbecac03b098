//go:build ignore

// testfilter reads `go test -json` on stdin and prints what `go test`
// prints without -json: package results, and the output of failed tests.
// It exits 1 when a test failed, and, when CI=true, when a test was
// skipped: a skip (a missing tool, certificate or port) must never hide a
// broken feature behind "ok".
//
//	go test -json ./... | go run .ci/testfilter.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

func main() {
	ci := os.Getenv("CI") == "true"
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	buffered := map[string]*strings.Builder{} // per package and test
	var skipped []string
	failed := false
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for in.Scan() {
		line := in.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintln(out, string(line))
			continue
		}
		if ev.Test == "" {
			// package results ("ok", "FAIL", "?"), build errors, panics
			// outside a test
			if ev.Action == "fail" {
				failed = true
			}
			if ev.Output == "PASS\n" { // printed only with -v
				continue
			}
			fmt.Fprint(out, ev.Output)
			out.Flush()
			continue
		}
		key := ev.Package + " " + ev.Test
		b := buffered[key]
		if b == nil {
			b = &strings.Builder{}
			buffered[key] = b
		}
		switch ev.Action {
		case "output":
			b.WriteString(ev.Output)
		case "fail":
			failed = true
			fmt.Fprint(out, b.String())
			delete(buffered, key)
		case "skip":
			skipped = append(skipped, key+": "+skipReason(b.String()))
			delete(buffered, key)
		case "pass":
			delete(buffered, key)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(out, "testfilter:", err)
		failed = true
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(out, "\n%d tests skipped:\n", len(skipped))
		for _, s := range skipped {
			fmt.Fprintln(out, "  "+s)
		}
		if ci {
			fmt.Fprintln(out, "CI=true: a skipped test fails the run (install what it needs)")
			failed = true
		}
	}
	if failed {
		out.Flush()
		os.Exit(1)
	}
}

// skipReason is the skip message: the test's output without the
// "=== RUN" and "--- SKIP" framing.
func skipReason(output string) string {
	var lines []string
	for _, l := range strings.Split(output, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		lines = append(lines, t)
	}
	return strings.Join(lines, " / ")
}
