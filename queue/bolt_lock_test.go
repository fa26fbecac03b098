package queue

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second opener of a store in use gets an error that says so in words
// (bbolt's own is just "timeout").
func TestOpenBoltInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	first, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Close() }()
	_, err = OpenBolt(path, BoltOptions{OpenTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: %v", err)
	}
}
