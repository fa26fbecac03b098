package verify

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
)

// ErrBusy is returned when every slot for slow password hashing stayed
// taken while the request waited: the verdict is unknown, so the caller
// should ask the sender to retry (429) rather than answer 401.
var ErrBusy = errors.New("too many password checks in progress")

// hashSlots bounds the slow password hashes (bcrypt, argon2id) computed at
// once by every basic verifier of the process, so wrong passwords cannot
// pin every core; a check waits at most hashWait for a slot.
var hashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

const hashWait = 2 * time.Second

// basic checks HTTP Basic credentials against one user.
type basic struct {
	user        [sha256.Size]byte
	hash        string
	compare     func(password []byte) bool
	fakeHash    string
	fakeCompare func(password []byte) bool
	cache       *hashCache    // only for slow hashes
	slots       chan struct{} // only for slow hashes: hashSlots
	wait        time.Duration
}

func newBasic(user, password string) (Verifier, error) {
	if user == "" || password == "" {
		return nil, errors.New("basic needs a username and a password")
	}
	if strings.Contains(user, ":") {
		return nil, errors.New("basic username must not contain a colon")
	}
	b := &basic{user: sha256.Sum256([]byte(user))}
	switch {
	case strings.HasPrefix(password, "$2a$"), strings.HasPrefix(password, "$2b$"), strings.HasPrefix(password, "$2y$"):
		cost, err := bcrypt.Cost([]byte(password))
		if err != nil {
			return nil, errors.New("basic: invalid bcrypt hash")
		}
		b.hash, b.compare = password, bcryptCompare(password)
		b.fakeHash = fakeBcrypt(password[:4], cost)
		b.fakeCompare = bcryptCompare(b.fakeHash)
	case strings.HasPrefix(password, "$argon2id$"):
		h, err := parseArgon2id(password)
		if err != nil {
			return nil, fmt.Errorf("basic: %w", err)
		}
		fake := h.fake()
		b.hash, b.compare = password, h.compare
		b.fakeHash, b.fakeCompare = fake.String(), fake.compare
	default:
		b.compare = plainCompare(password)
		b.fakeCompare = plainCompare("antitiming")
		return b, nil
	}
	b.cache = newHashCache()
	b.slots, b.wait = hashSlots, hashWait
	return b, nil
}

func (b *basic) Verify(r *http.Request, _ []byte) error {
	user, pass, ok := parseBasic(r.Header.Get("Authorization"))
	if !ok {
		if r.Header.Get("Authorization") == "" {
			return fmt.Errorf("basic: Authorization header %w", ErrMissing)
		}
		return fmt.Errorf("basic: Authorization header %w", ErrMalformed)
	}
	u := sha256.Sum256([]byte(user))
	userOK := subtle.ConstantTimeCompare(u[:], b.user[:]) == 1
	// always pay for a password check, against a fake hash for a wrong user
	passOK, err := b.check([]byte(pass), userOK)
	if err != nil {
		return fmt.Errorf("basic: %w", err)
	}
	if userOK && passOK {
		return nil
	}
	return fmt.Errorf("basic: %w", ErrMismatch)
}

// check compares pass with the stored password, or with a fake one of the
// same kind and cost when the user is wrong, so both cost the same.
func (b *basic) check(pass []byte, userOK bool) (bool, error) {
	hash, compare := b.hash, b.compare
	if !userOK {
		hash, compare = b.fakeHash, b.fakeCompare
	}
	if b.cache == nil {
		return compare(pass) && userOK, nil
	}
	ok, err := b.cache.check(hash, pass, func() (bool, error) {
		timer := time.NewTimer(b.wait)
		defer timer.Stop()
		select {
		case b.slots <- struct{}{}:
		case <-timer.C:
			return false, ErrBusy
		}
		defer func() { <-b.slots }()
		return compare(pass), nil
	})
	return ok && userOK, err
}

// fakeBcrypt is a bcrypt hash of the same version and cost as the real
// one, with a random salt and digest that no password matches.
func fakeBcrypt(version string, cost int) string {
	const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var raw [53]byte // 22 characters of salt, 31 of digest
	_, _ = rand.Read(raw[:])
	for i, c := range raw {
		raw[i] = alphabet[int(c)%len(alphabet)]
	}
	// the last character of the salt carries 2 bits of padding: keep it one
	// whose padding is zero, as bcrypt writes it
	raw[21] = "Oeu."[raw[21]%4]
	return fmt.Sprintf("%s%02d$%s", version, cost, raw[:])
}

func bcryptCompare(hash string) func([]byte) bool {
	return func(pw []byte) bool { return bcrypt.CompareHashAndPassword([]byte(hash), pw) == nil }
}

// plainCompare compares digests, so the compare takes the same time
// whatever the lengths.
func plainCompare(password string) func([]byte) bool {
	want := sha256.Sum256([]byte(password))
	return func(pw []byte) bool {
		got := sha256.Sum256(pw)
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
}

// parseBasic splits "Basic base64(user:pass)" at the first colon.
func parseBasic(h string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) || len(h) > 4096 {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", false
	}
	return user, pass, true
}

// hashCache remembers successful slow hash comparisons, keyed by a SHA-256
// of hash and password (never the plaintext), bounded with random
// eviction. Failures are never kept: a remembered failure would answer a
// wrong user faster than the right one. Concurrent misses for one key
// share one computation.
type hashCache struct {
	mu    sync.RWMutex
	m     map[[sha256.Size]byte]bool
	group singleflight.Group
}

const hashCacheSize = 1000

func newHashCache() *hashCache { return &hashCache{m: map[[sha256.Size]byte]bool{}} }

func (c *hashCache) check(hash string, pass []byte, compute func() (bool, error)) (bool, error) {
	h := sha256.New()
	h.Write([]byte(hash))
	h.Write([]byte{0})
	h.Write(pass)
	var key [sha256.Size]byte
	h.Sum(key[:0])

	c.mu.RLock()
	ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return true, nil
	}
	v, err, _ := c.group.Do(string(key[:]), func() (any, error) {
		ok, err := compute()
		if !ok || err != nil {
			return false, err
		}
		c.mu.Lock()
		if len(c.m) >= hashCacheSize {
			for k := range c.m { // map order is random: random eviction
				delete(c.m, k)
				break
			}
		}
		c.m[key] = true
		c.mu.Unlock()
		return true, nil
	})
	return v.(bool), err
}

// argon2idHash is a parsed "$argon2id$v=19$m=..,t=..,p=..$salt$key" string,
// the format `caddy hash-password --algorithm argon2id` writes.
type argon2idHash struct {
	salt, key    []byte
	time, memory uint32
	threads      uint8
}

func parseArgon2id(s string) (*argon2idHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, errors.New("invalid argon2id hash")
	}
	var m, t uint64
	var p uint64
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, errors.New("invalid argon2id parameters")
	}
	var err1, err2, err3 error
	m, err1 = strconv.ParseUint(strings.TrimPrefix(params[0], "m="), 10, 32)
	t, err2 = strconv.ParseUint(strings.TrimPrefix(params[1], "t="), 10, 32)
	p, err3 = strconv.ParseUint(strings.TrimPrefix(params[2], "p="), 10, 8)
	if err1 != nil || err2 != nil || err3 != nil || m == 0 || t == 0 || p == 0 || m > 4<<20 {
		return nil, errors.New("invalid argon2id parameters")
	}
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil {
		return nil, errors.New("invalid argon2id salt")
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return nil, errors.New("invalid argon2id key")
	}
	return &argon2idHash{salt: salt, key: key, time: uint32(t), memory: uint32(m), threads: uint8(p)}, nil
}

func (h *argon2idHash) compare(pw []byte) bool {
	got := argon2.IDKey(pw, h.salt, h.time, h.memory, h.threads, uint32(len(h.key))) //nolint:gosec // the key of a parsed PHC string is far below 4 GiB
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// fake is a hash with the same parameters and lengths as h, and a random
// salt and key that no password matches, so comparing with it costs the
// same as comparing with h.
func (h *argon2idHash) fake() *argon2idHash {
	f := *h
	f.salt, f.key = make([]byte, len(h.salt)), make([]byte, len(h.key))
	_, _ = rand.Read(f.salt)
	_, _ = rand.Read(f.key)
	return &f
}

// String is the PHC string of h.
func (h *argon2idHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}
