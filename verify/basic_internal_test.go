package verify

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func basicRequest(user, pass string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth(user, pass)
	return r
}

func newBasicFor(t *testing.T, password string) *basic {
	t.Helper()
	v, err := New(Spec{Method: "basic", Username: "hooks", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return v.(*basic)
}

// bcryptHash is a hash made by the bcrypt library (as `caddy
// hash-password` does), not by this package.
func bcryptHash(t *testing.T, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// argon2Hash writes a PHC string as `caddy hash-password --algorithm
// argon2id` does, from the argon2 library.
func argon2Hash(password string, m, iterations uint32, p uint8, saltLen, keyLen int) string {
	salt := []byte(strings.Repeat("s", saltLen))
	key := argon2.IDKey([]byte(password), salt, iterations, m, p, uint32(keyLen)) //nolint:gosec // a small test length
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, iterations, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// A remembered failure would answer a wrong user in microseconds while
// the right user pays a full hash: only successes are cached.
func TestBasicCacheKeepsOnlySuccesses(t *testing.T) {
	for name, hash := range map[string]string{
		"bcrypt":   bcryptHash(t, "s3cret", bcrypt.MinCost),
		"argon2id": argon2Hash("s3cret", 64, 1, 1, 16, 32),
	} {
		t.Run(name, func(t *testing.T) {
			b := newBasicFor(t, hash)
			for _, c := range [][2]string{{"nobody", "s3cret"}, {"nobody", "guess"}, {"hooks", "guess"}, {"nobody", "s3cret"}, {"hooks", "guess"}} {
				if err := b.Verify(basicRequest(c[0], c[1]), nil); !errors.Is(err, ErrMismatch) {
					t.Fatalf("%s:%s: %v, want a mismatch", c[0], c[1], err)
				}
			}
			if n := len(b.cache.m); n != 0 {
				t.Fatalf("the cache holds %d verdicts after failures only, want 0", n)
			}
			for range 2 {
				if err := b.Verify(basicRequest("hooks", "s3cret"), nil); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(b.cache.m); n != 1 {
				t.Fatalf("the cache holds %d verdicts after one success, want 1", n)
			}
		})
	}
}

// The fake hash compared for a wrong user has the algorithm and cost of
// the configured hash, read back from the fake hash itself.
func TestBasicFakeHashCost(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, 5, 6} {
		hash := bcryptHash(t, "pw", cost)
		b := newBasicFor(t, hash)
		got, err := bcrypt.Cost([]byte(b.fakeHash))
		if err != nil || got != cost || b.fakeHash[:4] != hash[:4] {
			t.Errorf("bcrypt cost %d: fake hash %.7s... has cost %d (%v)", cost, b.fakeHash, got, err)
		}
		if b.fakeCompare([]byte("pw")) {
			t.Errorf("bcrypt cost %d: the fake hash matches the real password", cost)
		}
	}
	for _, p := range []struct {
		m, t     uint32
		threads  uint8
		salt, ln int
	}{{64, 1, 1, 16, 32}, {128, 3, 2, 8, 16}, {47104, 1, 1, 16, 32}} {
		hash := argon2Hash("pw", p.m, p.t, p.threads, p.salt, p.ln)
		b := newBasicFor(t, hash)
		real, fake := strings.Split(hash, "$"), strings.Split(b.fakeHash, "$")
		if len(fake) != 6 || fake[1] != "argon2id" || fake[2] != real[2] || fake[3] != real[3] {
			t.Errorf("argon2id %s: fake hash has %q", real[3], b.fakeHash)
			continue
		}
		fs, _ := base64.RawStdEncoding.DecodeString(fake[4])
		fk, _ := base64.RawStdEncoding.DecodeString(fake[5])
		if len(fs) != p.salt || len(fk) != p.ln {
			t.Errorf("argon2id %s: fake salt %d and key %d bytes, want %d and %d", real[3], len(fs), len(fk), p.salt, p.ln)
		}
		if b.fakeCompare([]byte("pw")) {
			t.Errorf("argon2id %s: the fake hash matches the real password", real[3])
		}
	}
}

// blockingCompares replaces b's comparisons with ones that count how many
// run at once and wait for release.
func blockingCompares(b *basic) (inFlight, most *atomic.Int32, release chan struct{}) {
	inFlight, most, release = new(atomic.Int32), new(atomic.Int32), make(chan struct{})
	compare := func(ok func([]byte) bool) func([]byte) bool {
		return func(pw []byte) bool {
			n := inFlight.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			inFlight.Add(-1)
			return ok(pw)
		}
	}
	b.compare, b.fakeCompare = compare(b.compare), compare(b.fakeCompare)
	return inFlight, most, release
}

// N concurrent checks of distinct passwords never hash more than the
// bound at once; those over it wait for a slot.
func TestBasicHashingBounded(t *testing.T) {
	const limit, n = 3, 12
	b := newBasicFor(t, bcryptHash(t, "right", bcrypt.MinCost))
	b.slots, b.wait = make(chan struct{}, limit), time.Minute
	inFlight, most, release := blockingCompares(b)

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		user, pass := "hooks", "wrong"+strconv.Itoa(i)
		if i%2 == 0 {
			user = "nobody"
		}
		if i == n-1 {
			user, pass = "hooks", "right"
		}
		wg.Go(func() { errs[i] = b.Verify(basicRequest(user, pass), nil) })
	}
	for inFlight.Load() < limit {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a chance for any check over the bound to start
	if got := most.Load(); got != limit {
		t.Errorf("%d hashes ran at once, want the bound %d", got, limit)
	}
	close(release)
	wg.Wait()
	if got := most.Load(); got > limit {
		t.Errorf("%d hashes ran at once, bound %d", got, limit)
	}
	for i, err := range errs {
		want := ErrMismatch
		if i == n-1 {
			want = nil
		}
		if !errors.Is(err, want) && err != want {
			t.Errorf("check %d: %v, want %v", i, err, want)
		}
	}
}

// A check that finds every slot taken for longer than it may wait fails
// with ErrBusy, which is not remembered.
func TestBasicBusy(t *testing.T) {
	b := newBasicFor(t, bcryptHash(t, "right", bcrypt.MinCost))
	b.slots, b.wait = make(chan struct{}, 1), 10*time.Millisecond
	inFlight, _, release := blockingCompares(b)
	done := make(chan error)
	go func() { done <- b.Verify(basicRequest("hooks", "right"), nil) }()
	for inFlight.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	for _, c := range [][2]string{{"nobody", "pw-7Qx"}, {"hooks", "pw-9Zk"}} {
		err := b.Verify(basicRequest(c[0], c[1]), nil)
		if !errors.Is(err, ErrBusy) || errors.Is(err, ErrMismatch) {
			t.Errorf("%s with every slot taken: %v, want ErrBusy", c[0], err)
		}
		if err != nil && strings.Contains(err.Error(), c[1]) {
			t.Errorf("error carries the password: %v", err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the check holding the slot: %v", err)
	}
	if err := b.Verify(basicRequest("hooks", "pw-9Zk"), nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("after the slot is free: %v, want a mismatch", err)
	}
}
