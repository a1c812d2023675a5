package protocol

import "fmt"

// WebSocket close codes used by Heartline. 4000-4499: the client may reconnect on
// its own; 4500-4999: it must not, and should tell the person why.
const (
	CloseNormal             = 1000 // after bye: stay disconnected
	CloseGoingAway          = 1001 // relay shutting down or restarting: reconnect with jitter
	CloseInvalidPayload     = 1007 // a text frame that is not UTF-8 (RFC 6455 "invalid frame payload data")
	CloseTooLarge           = 1009 // frame over the relay's limit: reconnect, report it
	CloseHeartbeatTimeout   = 4000 // no frame within the heartbeat timeout: reconnect
	CloseSlowConsumer       = 4001 // send queue overflow: reconnect
	CloseReplaced           = 4002 // a newer connection of the same member took over: stay disconnected
	CloseProtocolError      = 4003 // no hello in time, or a protocol error: reconnect
	CloseThrottled          = 4004 // too many failed logins from this address: reconnect after the error's retry_after_ms
	CloseUnauthorized       = 4500 // bad or missing token
	CloseNameTaken          = 4501 // name held by another member of the room
	CloseKicked             = 4502 // kicked or banned
	CloseUnsupportedVersion = 4503 // protocol version not supported
	CloseHelloRefused       = 4504 // invalid name, room, key or avatar
	CloseRoomFull           = 4505 // the room holds its maximum number of members
)

// ShouldReconnect reports whether a client may reconnect on its own after the
// relay closed its connection with code. Codes the relay never sends (1006 for
// an abnormal closure, say) count as a broken link, so they reconnect too.
func ShouldReconnect(code int) bool {
	switch {
	case code == CloseNormal, code == CloseReplaced:
		return false
	case code >= 4500 && code <= 4999:
		return false
	default:
		return true
	}
}

// CloseText explains a close code in a sentence a person can read, with what to
// do next where there is something to do.
func CloseText(code int) string {
	switch code {
	case CloseNormal:
		return "You left the room."
	case CloseGoingAway:
		return "The relay is restarting; reconnecting shortly."
	case CloseInvalidPayload:
		return "The relay refused a frame that was not valid UTF-8 text."
	case CloseTooLarge:
		return "The relay refused a frame that was too large."
	case CloseHeartbeatTimeout:
		return "The relay heard nothing from this computer in time and dropped the link."
	case CloseSlowConsumer:
		return "This computer could not keep up with the room, so the relay dropped the link."
	case CloseReplaced:
		return "You joined this room from another window or device, which took over this connection."
	case CloseProtocolError:
		return "The relay closed the link after a protocol error."
	case CloseThrottled:
		return "Too many failed sign-ins from this network: reconnecting after a pause."
	case CloseUnauthorized:
		return "The relay needs a token, or the token is wrong: check it in Settings."
	case CloseNameTaken:
		return "That name is taken in this room: choose another name."
	case CloseKicked:
		return "You were removed from this room."
	case CloseUnsupportedVersion:
		return "This relay speaks another protocol version: update Heartline or the relay."
	case CloseHelloRefused:
		return "The relay refused the name, room, key or avatar: fix it in Settings."
	case CloseRoomFull:
		return "The room is full: try again later or ask its host to raise the limit."
	case 1006:
		return "The connection was lost."
	default:
		return fmt.Sprintf("The relay closed the link (code %d).", code)
	}
}
