package protocol

import (
	"errors"
	"strings"
	"testing"
)

func wantRefused(t *testing.T, what string, err error, code string, close int) {
	t.Helper()
	var fe *FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: got %v, want a FrameError %s", what, err, code)
	}
	if fe.Code != code || fe.Close != close || fe.Message == "" {
		t.Errorf("%s: got %+v, want code %s close %d and a message", what, fe, code, close)
	}
}

func TestNormalizeName(t *testing.T) {
	good := map[string]string{
		"Alice":                  "Alice",
		"  Bob  ":                "Bob",
		"\tZoë\n":                "Zoë",
		"李小龙":                    "李小龙",
		strings.Repeat("é", 32):  strings.Repeat("é", 32),  // 64 bytes, 32 code points
		"family 👨\u200d👩\u200d👧": "family 👨\u200d👩\u200d👧", // ZWJ emoji stay allowed
	}
	for in, want := range good {
		got, err := NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", "   ", strings.Repeat("a", 33),
		"bell\a", "del\x7f", "c1\u0085x", "new\nline", "tab\tinside",
		"admin\u202Egnp.exe", "iso\u2066late", "mark\u200F", "line\u2028sep",
		"bad\xffutf8",
	}
	for _, in := range bad {
		_, err := NormalizeName(in)
		wantRefused(t, "NormalizeName("+in+")", err, ErrBadName, CloseHelloRefused)
	}
}

func TestNameFoldKey(t *testing.T) {
	same := [][2]string{{"Ana", "ANA"}, {"ana", "aNa"}, {"Kelvin", "\u212Aelvin"}, {"STRASSE", "strasse"}, {"Σίσυφος", "ΣΊΣΥΦΟΣ"}}
	for _, p := range same {
		if NameFoldKey(p[0]) != NameFoldKey(p[1]) {
			t.Errorf("NameFoldKey(%q) != NameFoldKey(%q)", p[0], p[1])
		}
	}
	if NameFoldKey("Ana") == NameFoldKey("Anna") {
		t.Error("different names share a key")
	}
}

func TestValidateRoom(t *testing.T) {
	for _, ok := range []string{"lobby", "a", "team-42_x", strings.Repeat("z", 32)} {
		if err := ValidateRoom(ok); err != nil {
			t.Errorf("ValidateRoom(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Lobby", "has space", "ünï", "a/b", strings.Repeat("z", 33), "x\x00"} {
		wantRefused(t, "ValidateRoom("+bad+")", ValidateRoom(bad), ErrBadRoom, CloseHelloRefused)
	}
}

func TestValidateKey(t *testing.T) {
	if err := ValidateKey(strings.Repeat("k", 16)); err != nil {
		t.Error(err)
	}
	if err := ValidateKey(strings.Repeat("ключ", 32)); err != nil { // 128 code points
		t.Error(err)
	}
	for _, bad := range []string{"", strings.Repeat("k", 15), strings.Repeat("k", 129), strings.Repeat("k", 16) + "\n"} {
		wantRefused(t, "ValidateKey", ValidateKey(bad), ErrBadKey, CloseHelloRefused)
	}
}

func TestParseAvatar(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	ok := map[string][2]string{
		"":                {AvatarNone, ""},
		"builtin:fox":     {AvatarBuiltin, "fox"},
		"builtin:robot-2": {AvatarBuiltin, "robot-2"},
		"sha256:" + hex:   {AvatarSHA256, hex},
	}
	for in, want := range ok {
		kind, value, err := ParseAvatar(in)
		if err != nil || kind != want[0] || value != want[1] {
			t.Errorf("ParseAvatar(%q) = %q, %q, %v", in, kind, value, err)
		}
	}
	for _, bad := range []string{"fox", "builtin:", "builtin:Fox", "builtin:../etc", "sha256:" + strings.ToUpper(hex),
		"sha256:abc", "sha256:" + hex + "0", "https://example.com/a.png", "sha256:" + strings.Repeat("g", 64)} {
		wantRefused(t, "ParseAvatar("+bad+")", ValidateAvatar(bad), ErrBadAvatar, CloseHelloRefused)
	}
}

func TestValidateMsgID(t *testing.T) {
	if err := ValidateMsgID("c-1"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a\nb"} {
		wantRefused(t, "ValidateMsgID", ValidateMsgID(bad), ErrBadFrame, 0)
	}
}

func TestHelloValidate(t *testing.T) {
	h := Hello{V: 1, Room: "lobby", Name: "  Alice ", Key: strings.Repeat("k", 20)}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if h.Name != "Alice" {
		t.Errorf("Validate left the name as %q", h.Name)
	}
	v2 := Hello{V: 2, Room: "lobby", Name: "A", Key: strings.Repeat("k", 20)}
	wantRefused(t, "v2", v2.Validate(), ErrBadFrame, CloseUnsupportedVersion)
	noV := Hello{Room: "lobby", Name: "A", Key: strings.Repeat("k", 20)}
	wantRefused(t, "no v", noV.Validate(), ErrBadFrame, CloseUnsupportedVersion)
	badAvatar := Hello{V: 1, Room: "lobby", Name: "A", Key: strings.Repeat("k", 20), Avatar: "http://x"}
	wantRefused(t, "avatar", badAvatar.Validate(), ErrBadAvatar, CloseHelloRefused)
}

func TestTextLenCountsCodePoints(t *testing.T) {
	if n := TextLen("héllo 👋"); n != 7 {
		t.Errorf("TextLen = %d, want 7", n)
	}
}

func TestCloseClasses(t *testing.T) {
	reconnect := []int{CloseGoingAway, CloseTooLarge, CloseHeartbeatTimeout, CloseSlowConsumer, CloseProtocolError, CloseThrottled, 4499, 1006, 1011}
	stop := []int{CloseNormal, CloseReplaced, CloseUnauthorized, CloseNameTaken, CloseKicked, CloseUnsupportedVersion, CloseHelloRefused, CloseRoomFull, 4999}
	for _, c := range reconnect {
		if !ShouldReconnect(c) {
			t.Errorf("ShouldReconnect(%d) = false", c)
		}
	}
	for _, c := range stop {
		if ShouldReconnect(c) {
			t.Errorf("ShouldReconnect(%d) = true", c)
		}
		if CloseText(c) == "" {
			t.Errorf("CloseText(%d) is empty", c)
		}
	}
	if !strings.Contains(CloseText(CloseNameTaken), "another name") {
		t.Errorf("CloseText(4501) = %q: should tell the person what to do", CloseText(CloseNameTaken))
	}
}
