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
