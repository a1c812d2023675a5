package protocol

import (
	"strconv"
	"unicode/utf8"
)

// The frames a relay handles per chat message (a client's msg in; a msg and
// an ack out to every member) are encoded and decoded by hand: reflection
// was a third of a busy relay's CPU. The output is byte for byte what
// encoding/json writes for the same struct, and the decoder gives up on
// anything but the plain frames engines write, leaving those to
// encoding/json; fastjson_test.go holds both to that with fuzzing.

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML-safe, invalid UTF-8 as U+FFFD, U+2028/9 escaped).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendMember(b []byte, m *Member) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, m.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, m.Name)
	b = append(b, `,"avatar":`...)
	b = appendString(b, m.Avatar)
	b = append(b, `,"since":`...)
	b = strconv.AppendInt(b, m.Since, 10)
	b = append(b, `,"state":`...)
	b = appendString(b, m.State)
	return append(b, '}')
}

func (f *Message) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 128+len(f.ID)+len(f.From.ID)+len(f.From.Name)+len(f.From.Avatar)+len(f.Text))
	b = append(b, `{"type":"`+TypeMsg+`","seq":`...)
	b = strconv.AppendUint(b, f.Seq, 10)
	b = append(b, `,"id":`...)
	b = appendString(b, f.ID)
	b = append(b, `,"from":`...)
	b = appendMember(b, &f.From)
	b = append(b, `,"text":`...)
	b = appendString(b, f.Text)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, f.TS, 10)
	return append(b, '}'), nil
}

func (f *Ack) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+len(f.ID))
	b = append(b, `{"type":"`+TypeAck+`","id":`...)
	b = appendString(b, f.ID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, f.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, f.TS, 10)
	return append(b, '}'), nil
}

// decodeSend reads a client's msg frame written the plain way:
// {"type":"msg","id":"...","text":"..."} in any order after the type, no
// whitespace, strings without escapes, nothing else. ok is false for
// anything else, which encoding/json then reads (or refuses).
func decodeSend(data []byte) (f *Send, ok bool) {
	const prefix = `{"type":"` + TypeMsg + `"`
	if len(data) < len(prefix) || string(data[:len(prefix)]) != prefix {
		return nil, false
	}
	f = new(Send)
	rest := data[len(prefix):]
	for {
		if len(rest) == 1 && rest[0] == '}' {
			return f, true
		}
		if len(rest) < 2 || rest[0] != ',' || rest[1] != '"' {
			return nil, false
		}
		var key, val string
		if key, rest, ok = plainString(rest[2:]); !ok {
			return nil, false
		}
		if len(rest) < 2 || rest[0] != ':' || rest[1] != '"' {
			return nil, false
		}
		if val, rest, ok = plainString(rest[2:]); !ok {
			return nil, false
		}
		switch key {
		case "id":
			f.ID = val
		case "text":
			f.Text = val
		default:
			// "type" again, another field, or a key encoding/json would
			// match to a field without regard to case.
			return nil, false
		}
	}
}

// plainString reads a string's contents up to its closing quote (which
// must be there); ok is false for an escape, a control character or
// invalid UTF-8, where encoding/json's rules apply.
func plainString(data []byte) (s string, rest []byte, ok bool) {
	ascii := true
	for i, c := range data {
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(data[:i]) {
				return "", nil, false
			}
			return string(data[:i]), data[i+1:], true
		case c == '\\' || c < 0x20:
			return "", nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", nil, false
}
