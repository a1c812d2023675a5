package protocol

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Avatar kinds returned by ParseAvatar.
const (
	AvatarNone    = ""
	AvatarBuiltin = "builtin"
	AvatarSHA256  = "sha256"
)

// BuiltinAvatar is the avatar value of a picture shipped with Heartline.
func BuiltinAvatar(name string) string { return AvatarBuiltin + ":" + name }

// TextLen is the length of s as the protocol counts it: Unicode code points.
func TextLen(s string) int { return utf8.RuneCountInString(s) }

// NormalizeName trims the white space around a display name and checks it:
// 1-32 code points, no control characters and no bidirectional overrides (which
// would let a name display as another). It returns the trimmed name. These are
// the wire-level checks; the relay and the clients call shared/names.Normalize,
// which adds PRECIS normalisation and refuses invisible characters (it needs
// golang.org/x/text, which this package may not import).
func NormalizeName(s string) (string, error) {
	name := strings.TrimSpace(s)
	n := TextLen(name)
	switch {
	case n == 0:
		return "", helloRefused(ErrBadName, "the name is empty: choose a name of 1 to 32 characters")
	case n > NameMaxLen:
		return "", helloRefused(ErrBadName, fmt.Sprintf("the name has %d characters; at most %d are allowed", n, NameMaxLen))
	}
	for _, r := range name {
		if forbiddenInName(r) {
			return "", helloRefused(ErrBadName, fmt.Sprintf("the name contains the invisible or control character %U", r))
		}
	}
	return name, nil
}

func forbiddenInName(r rune) bool {
	switch {
	case r == utf8.RuneError, unicode.IsControl(r): // invalid UTF-8; C0, DEL and C1 controls
		return true
	case r == '\u2028', r == '\u2029': // line and paragraph separators
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069', r == '\u200E', r == '\u200F':
		return true // bidirectional embeddings, overrides, isolates and marks
	}
	return false
}

// NameFoldKey maps a name to a case-insensitive key: names that differ only in
// case ("Ana", "ANA", "ana") share a key. Rooms use shared/names.Key and
// ShapeKey, which catch look-alikes too; the CLI names its key files with this.
func NameFoldKey(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune picks the smallest rune of r's case-folding orbit, so that every
// member of the orbit (K, k and the Kelvin sign, say) maps to the same rune.
func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < least {
			least = f
		}
	}
	return least
}

// ValidateRoom checks a room name: 1-32 of a-z, 0-9, '-' and '_'.
func ValidateRoom(s string) error {
	if s == "" || len(s) > RoomMaxLen {
		return helloRefused(ErrBadRoom, fmt.Sprintf("a room name has 1 to %d characters; got %d", RoomMaxLen, TextLen(s)))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return helloRefused(ErrBadRoom, "a room name may contain only a-z, 0-9, '-' and '_'")
		}
	}
	return nil
}

// ValidateKey checks a member key: 16-128 code points without control characters.
func ValidateKey(s string) error {
	n := TextLen(s)
	if n < KeyMinLen || n > KeyMaxLen {
		return helloRefused(ErrBadKey, fmt.Sprintf("the member key has %d characters; it needs %d to %d", n, KeyMinLen, KeyMaxLen))
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return helloRefused(ErrBadKey, "the member key contains control characters or invalid UTF-8")
	}
	return nil
}

// ParseAvatar splits an avatar value into its kind (AvatarNone, AvatarBuiltin or
// AvatarSHA256) and value, checking its syntax. Whether a built-in exists or an
// uploaded picture is stored is for the relay to check.
func ParseAvatar(s string) (kind, value string, err error) {
	if s == "" {
		return AvatarNone, "", nil
	}
	kind, value, _ = strings.Cut(s, ":")
	switch kind {
	case AvatarBuiltin:
		if value == "" || len(value) > 32 || strings.ContainsFunc(value, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
		}) {
			return "", "", helloRefused(ErrBadAvatar, "a built-in avatar is builtin:<name> with a name of a-z, 0-9 and '-'")
		}
		return kind, value, nil
	case AvatarSHA256:
		if len(value) != 64 || strings.ContainsFunc(value, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f')
		}) {
			return "", "", helloRefused(ErrBadAvatar, "an uploaded avatar is sha256:<64 lowercase hex digits>")
		}
		return kind, value, nil
	}
	return "", "", helloRefused(ErrBadAvatar, `an avatar is empty, "builtin:<name>" or "sha256:<hex>"`)
}

// ValidateAvatar checks an avatar value's syntax (see ParseAvatar).
func ValidateAvatar(s string) error {
	_, _, err := ParseAvatar(s)
	return err
}

// ValidateMsgID checks a client message id: 1-64 code points, no control characters.
func ValidateMsgID(s string) error {
	n := TextLen(s)
	if n == 0 || n > MsgIDMaxLen {
		return &FrameError{Code: ErrBadFrame, Message: fmt.Sprintf("a message id has 1 to %d characters", MsgIDMaxLen)}
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return &FrameError{Code: ErrBadFrame, Message: "a message id may not contain control characters"}
	}
	return nil
}

// Validate checks a hello (version, room, name, key, avatar) and trims h.Name
// to its normalized form. A wrong version closes with 4503; anything else it
// refuses closes with 4504.
func (h *Hello) Validate() error {
	if h.V != Version {
		return &FrameError{Code: ErrBadFrame, Close: CloseUnsupportedVersion,
			Message: fmt.Sprintf("protocol version %d is not supported; this relay speaks version %d", h.V, Version)}
	}
	if err := ValidateRoom(h.Room); err != nil {
		return err
	}
	name, err := NormalizeName(h.Name)
	if err != nil {
		return err
	}
	if err := ValidateKey(h.Key); err != nil {
		return err
	}
	if err := ValidateAvatar(h.Avatar); err != nil {
		return err
	}
	h.Name = name
	return nil
}

func helloRefused(code, msg string) *FrameError {
	return &FrameError{Code: code, Message: msg, Close: CloseHelloRefused}
}
