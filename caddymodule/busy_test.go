package caddymodule_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestBasicBusyAnswers429 sends many concurrent wrong passwords to a basic
// user whose hash is bcrypt cost 12 (a quarter second per check; cost 14,
// `caddy hash-password`'s default, would keep the few checks that get a
// slot beyond a client's patience under the race detector): hashing is
// bounded, so the checks that wait too long for a slot are answered 429
// with Retry-After rather than 401, the others 401, and none reaches the
// upstream.
func TestBasicBusyAnswers429(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes bcrypt for several seconds")
	}
	app := newUpstream(t, nil)
	hashed, err := bcrypt.GenerateFromPassword([]byte("the right password"), 12)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(hashed)
	tester := startCaddy(t, fmt.Sprintf(`
http://localhost:9080 {
	webhook_gateway /busy {
		auth basic hooks %q
	}
	reverse_proxy %s
}
`, hash, app.addr()))

	// the bound is max(2, GOMAXPROCS) slots and a 2s wait: sixteen rounds
	// of cost-12 hashes take well over that
	n := 16 * max(2, runtime.GOMAXPROCS(0))
	statuses := make([]int, n)
	headers := make([]http.Header, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/busy", gatewayPort), strings.NewReader(`{"a":1}`))
			if err != nil {
				t.Error(err)
				return
			}
			user := "hooks"
			if i%2 == 1 {
				user = "nobody"
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":wrong-"+strconv.Itoa(i))))
			statuses[i], headers[i], _ = do(t, tester, req)
		})
	}
	wg.Wait()
	busy := 0
	for i, status := range statuses {
		switch status {
		case http.StatusTooManyRequests:
			busy++
			if headers[i].Get("Retry-After") == "" {
				t.Errorf("request %d: 429 without Retry-After", i)
			}
		case http.StatusUnauthorized:
		default:
			t.Errorf("request %d: status %d, want 401 or 429", i, status)
		}
	}
	if busy == 0 {
		t.Errorf("none of %d concurrent cost-14 checks was refused with 429", n)
	}
	if got := len(app.requests()); got != 0 {
		t.Errorf("%d requests reached the upstream", got)
	}
	t.Logf("%d of %d answered 429", busy, n)
}
