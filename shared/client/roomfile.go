package client

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// RoomKey names one room on one relay the way a person would: the relay
// address is compared without case or surrounding space. Apps key what they
// keep per room (member key, resume point, outbox) by it.
func RoomKey(relay, room string) string {
	return strings.ToLower(strings.TrimSpace(relay)) + "|" + room
}

// RoomFile names the file in dir that keeps one kind of per-room state for a
// room on a relay: name "outbox.json" gives dir/outbox-<hash>.json, where the
// hash covers RoomKey(relay, room) and profile. The profile tells apart
// identities kept in one directory; "" is the one identity the desktop app
// keeps. The hash keeps relay addresses out of file names.
func RoomFile(dir, name, relay, room, profile string) string {
	id := RoomKey(relay, room)
	if profile != "" {
		id += "|" + profile
	}
	sum := sha256.Sum256([]byte(id))
	ext := filepath.Ext(name)
	return filepath.Join(dir, strings.TrimSuffix(name, ext)+"-"+hex.EncodeToString(sum[:8])+ext)
}
