package queue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-webhooks/gateway/queue"
)

// killDirEnv names the store directory of the writer process that
// TestPebbleSurvivesKill starts and kills.
const killDirEnv = "QUEUE_TEST_KILL_DIR"

// killWriter is the process TestPebbleSurvivesKill kills (TestMain runs
// it when killDirEnv is set): 16 senders enqueue (some re-sending ids,
// with and without dedup, some leased at enqueue) while workers lease and
// ack. Each accepted record is printed after Enqueue returned, each ack
// after Ack returned. It runs until it is killed.
func killWriter(dir string) {
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		_, _ = fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", g, i/2) // every id is sent twice
				opts := queue.EnqueueOptions{}
				if g%2 == 0 {
					opts.Dedup = time.Hour
				}
				if i%3 == 0 {
					opts.LeaseFor = time.Hour
				}
				evs := []*queue.Event{{ID: id, Hook: "kill", Body: []byte(`{}`)}, {ID: id, Hook: "kill", Action: 1, Body: []byte(`{}`)}}
				err := s.Enqueue(ctx, evs, opts)
				switch {
				case errors.Is(err, queue.ErrDuplicate):
				case err != nil:
					say("error %v", err)
					return
				default:
					say("accepted %s %s %s %t", id, evs[0].Key, evs[1].Key, opts.Dedup > 0)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for {
				evs, err := s.Lease(ctx, 16, time.Hour)
				if err != nil {
					say("error %v", err)
					return
				}
				for _, ev := range evs {
					if err := s.Ack(ctx, queue.LeaseOf(ev), queue.Attempt{At: time.Now(), Status: 200}); err != nil {
						say("error %v", err)
						return
					}
					say("acked %s", ev.Key)
				}
			}
		})
	}
	wg.Wait()
}

// TestPebbleSurvivesKill: while a writer process runs, opening its
// directory is refused in words; the writer is killed (SIGKILL) while it
// accepts, leases and acks; after reopening, every record it reported
// accepted is there with its event id, its dedup mark holds, and it is
// queued (a lease or an ack lost or cut short: due again) or delivered.
func TestPebbleSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type accepted struct {
		id    string
		keys  []string
		dedup bool
	}
	var got []accepted
	acks := 0
	lines := bufio.NewScanner(stdout)
	killed := false
	// Read until 2000 acks, kill, then read what it wrote before dying.
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 5 && f[0] == "accepted":
			got = append(got, accepted{id: f[1], keys: f[2:4], dedup: f[4] == "true"})
		case len(f) == 2 && f[0] == "acked":
			acks++
		case len(f) > 0 && f[0] == "error":
			t.Errorf("writer: %s", lines.Text())
		}
		if len(got) == 1 {
			// the writer holds the directory: another process is told so
			_, err := queue.OpenPebble(dir, queue.PebbleOptions{})
			if want := "event store " + dir + " is in use by another process"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("open while the writer runs: %v, want %q", err, want)
			}
		}
		if acks >= 2000 && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the writer stopped by itself after %d acks: %v", acks, lines.Err())
	}

	ctx := context.Background()
	s, err := queue.OpenPebble(dir, queue.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, a := range got {
		for _, key := range a.keys {
			ev, err := s.Get(ctx, key)
			if err != nil {
				t.Fatalf("accepted record %s of %s: %v", key, a.id, err)
			}
			if ev.ID != a.id {
				t.Fatalf("record %s holds %s, want %s", key, ev.ID, a.id)
			}
			// delivering when killed is due again; an ack may or may not
			// have reached the disk
			if ev.Status != queue.StatusQueued && (ev.Status != queue.StatusDelivered || len(ev.Attempts) != 1) {
				t.Fatalf("record %s after restart: %+v", key, ev)
			}
		}
		if a.dedup {
			err := s.Enqueue(ctx, []*queue.Event{{ID: a.id, Hook: "kill", Body: []byte(`{}`)}}, queue.EnqueueOptions{Dedup: time.Hour})
			if !errors.Is(err, queue.ErrDuplicate) {
				t.Fatalf("dedup mark of %s after the kill: %v", a.id, err)
			}
		}
	}
	t.Logf("%d requests accepted, %d acks seen before the kill", len(got), acks)
}
