//go:build resent_ids

// Built only with -tags resent_ids until the store keeps a re-sent id as a
// new event: today the second write with an id replaces the first record
// (bolt store), and the first payload is never delivered, so this test
// fails. Run it with
//
//	go test -tags resent_ids -run TestCrashResentIDs ./caddy

package main

import "testing"

// TestCrashResentIDs is TestAsyncSurvivesSIGKILL with senders that name
// their events and send some ids twice with different payloads. Without
// deduplicate a re-sent id is a new event (DESIGN: "A re-sent id without
// deduplicate is a new event"), so both payloads must reach the upstream
// across the kill and restart: deliveries are counted by id and payload.
func TestCrashResentIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a whole Caddy binary")
	}
	crashAndRestart(t, true)
}
