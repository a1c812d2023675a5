package main

// A frame scanner for the receive hot path: it reads only the top-level "type",
// "seq", "id" and "code" of a relay frame, skipping nested objects (a msg's
// "from" member also has an "id") without building any value. Full decoding
// (protocol.DecodeRelay) costs several microseconds and allocations per frame,
// which at a million deliveries a second would make the generator, not the
// relay, the bottleneck.

// frameHead is what the hot path needs from a relay frame. The byte slices
// point into the frame buffer and are valid until the next read.
type frameHead struct {
	typ  []byte
	id   []byte
	code []byte
	seq  uint64
	// hasSeq tells a missing "seq" from seq 0.
	hasSeq bool
}

// scanHead fills h from a relay frame. It returns false when the frame is not
// a JSON object it can walk (the caller counts it as malformed).
func scanHead(b []byte, h *frameHead) bool {
	*h = frameHead{}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return true
	}
	for {
		// At a key: after "{" or ",".
		if i >= len(b) || b[i] != '"' {
			return false
		}
		keyStart := i + 1
		end, ok := skipString(b, i)
		if !ok {
			return false
		}
		key := b[keyStart : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return false
		}
		switch string(key) { // the compiler does not allocate for this conversion
		case "type", "id", "code":
			if b[i] != '"' {
				return false
			}
			end, ok := skipString(b, i)
			if !ok {
				return false
			}
			val := b[i+1 : end-1]
			switch key[0] {
			case 't':
				h.typ = val
			case 'i':
				h.id = val
			default:
				h.code = val
			}
			i = end
		case "seq":
			var n uint64
			j := i
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				n = n*10 + uint64(b[j]-'0')
				j++
			}
			if j == i {
				return false
			}
			h.seq, h.hasSeq = n, true
			i = j
		default:
			end, ok := skipValue(b, i)
			if !ok {
				return false
			}
			i = end
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the JSON value that starts at b[i].
func skipValue(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		return j, j > i
	}
}
