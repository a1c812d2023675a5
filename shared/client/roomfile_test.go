package client

import (
	"path/filepath"
	"testing"
)

// The names are on people's disks: a change of scheme would orphan their
// outboxes and member keys, so they are pinned here.
func TestRoomFileNames(t *testing.T) {
	dir := filepath.Join("state", "dir")
	for _, c := range []struct{ name, relay, room, profile, want string }{
		// The desktop app's outbox (its names predate this function).
		{"outbox.json", "wss://chat.example.org/ws", "lobby", "", "outbox-e966e0298d0398f3.json"},
		// The address as a person would compare it: case and spaces do not matter.
		{"outbox.json", "  WSS://Chat.Example.org/ws ", "lobby", "", "outbox-e966e0298d0398f3.json"},
		// The terminal client keeps one identity per name in one directory.
		{"key.txt", "wss://chat.example.org/ws", "lobby", "carol", "key-bfe7549716dccd80.txt"},
		{"outbox.json", "wss://chat.example.org/ws", "lobby", "carol", "outbox-bfe7549716dccd80.json"},
	} {
		if got, want := RoomFile(dir, c.name, c.relay, c.room, c.profile), filepath.Join(dir, c.want); got != want {
			t.Errorf("RoomFile(%q, %q, %q, %q) = %q, want %q", c.name, c.relay, c.room, c.profile, got, want)
		}
	}
	if RoomFile(dir, "outbox.json", "wss://a/ws", "lobby", "") == RoomFile(dir, "outbox.json", "wss://a/ws", "hall", "") {
		t.Error("two rooms share a file")
	}
}
