package names

import (
	"errors"
	"strings"
	"testing"

	"github.com/heartline/heartline/shared/protocol"
)

func wantBadName(t *testing.T, in string) {
	t.Helper()
	out, err := Normalize(in)
	var fe *protocol.FrameError
	if !errors.As(err, &fe) {
		t.Errorf("Normalize(%+q) = %+q, %v; want a bad_name refusal", in, out, err)
		return
	}
	if fe.Code != protocol.ErrBadName || fe.Close != protocol.CloseHelloRefused || fe.Message == "" {
		t.Errorf("Normalize(%+q): %+v; want bad_name, close 4504 and a message", in, fe)
	}
}

func TestNormalizeKeepsOrdinaryNames(t *testing.T) {
	good := map[string]string{
		"Alice":                  "Alice",
		"  Bob   Smith ":         "Bob Smith", // RFC 8266: interior runs of spaces become one
		"Zoë":                    "Zoë",
		"Zoe\u0308":              "Zoë",       // NFKC composes
		"\uff21lice":             "Alice",     // fullwidth Ａ
		"Bob\u3000Smith":         "Bob Smith", // ideographic space is a space
		"李小龙":                    "李小龙",
		"김민준":                    "김민준",
		"さくら":                    "さくら",
		"Ana":                    "Ana",
		"O'Brien-Smith":          "O'Brien-Smith",
		"Straße":                 "Straße",
		"🦊":                      "🦊",
		"👍🏽 Sam":                 "👍🏽 Sam",
		"Sam ❤\ufe0f":            "Sam ❤\ufe0f",            // emoji presentation selector
		"family 👨\u200d👩\u200d👧": "family 👨\u200d👩\u200d👧", // ZWJ emoji sequence
		"🏳\ufe0f\u200d🌈 Kai":     "🏳\ufe0f\u200d🌈 Kai",     // selector before a ZWJ
		"👩🏽\u200d💻 Dev":          "👩🏽\u200d💻 Dev",          // ZWJ after a skin tone
		"#\ufe0f\u20e3 one":      "#\ufe0f\u20e3 one",      // keycap
		"क्\u200dष":              "क्\u200dष",              // ZWJ after a virama (Devanagari)
		"\u0645\u200c\u0627":     "\u0645\u200c\u0627",     // ZWNJ where Arabic joining needs it
		strings.Repeat("é", 32):  strings.Repeat("é", 32),
	}
	for in, want := range good {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%+q) = %+q, %v; want %+q", in, got, err, want)
		}
	}
}

func TestNormalizeRefusesInvisibleNames(t *testing.T) {
	for _, in := range []string{
		"\u200b\u200b",                                         // zero-width spaces
		"\u200d",                                               // ZWJ
		"\u200c\u200c",                                         // ZWNJ
		"\ufeff",                                               // byte order mark
		"\u00ad",                                               // soft hyphen
		"\u3164", "\u115f", "\u1160", "\uffa0", "\u3164\u3164", // Hangul fillers
		"\U000e0041\U000e0042",   // tag characters
		"\ufe0f", "\ufe0f\ufe0f", // variation selectors alone
		"\u2060\u2061",           // word joiner, function application
		"\u2800\u2800",           // Braille blank
		"\u0301", "\u0301\u0302", // combining marks alone
		" \u200b ",
	} {
		wantBadName(t, in)
	}
}

func TestNormalizeRefusesHiddenCharacters(t *testing.T) {
	for _, in := range []string{
		"Alice\u200b", "Al\u200bice", "\ufeffAlice", "Ali\u00adce", "Alice\u3164",
		"Alice\U000e0041", "Alice\ufe0f", "A\u034flice", "Alice\u2060",
		"Al\u200dice", "Al\u200cice", // joiners where Latin never needs them
		"\u0301Alice",    // leading combining mark
		"a\ue000b",       // private use
		"admin\u202egnp", // bidi override (protocol.NormalizeName)
		"bell\a",
		strings.Repeat("\ufdfa", 2), // NFKC expands each to 18 characters
	} {
		wantBadName(t, in)
	}
}

func TestKeysCollideForLookAlikes(t *testing.T) {
	groups := [][]string{
		{"Alice", "alice", "ALICE", "\u0410lice", "\u0430lice", "\uff21lice", "Alice\u200b", "Al\u00adice"},
		{"Álice", "A\u0301lice", "\u00e1lice", "\u0410\u0301lice"},
		{"Ian", "lan", "ian", "IAN"}, // capital I looks like a small l: via ShapeKey
		{"paypal", "\u0440\u0430ypal", "PAYPAL"},
		{"Kelvin", "\u212aelvin"},
		{"Bob Smith", "Bob  Smith", "Bob\u3000Smith", "bob smith"},
		{"Σίσυφος", "ΣΊΣΥΦΟΣ"},
		{"Sam ❤\ufe0f", "Sam ❤"},
		{"ℌ𝔢𝔩𝔩𝔬", "Hello"},
		{"scott1", "scottl"},
		{"Sam", "Sarn"}, {"Bob", "B0b"}, // one character against two; zero against O
	}
	for _, g := range groups {
		for _, other := range g[1:] {
			if !clash(g[0], other) {
				t.Errorf("%+q and %+q look alike but share no key: %q vs %q", g[0], other, keys(g[0]), keys(other))
			}
		}
	}
}

func TestKeysDifferForDifferentNames(t *testing.T) {
	pairs := [][2]string{
		{"Ana", "Anna"}, {"Alice", "Alicia"}, {"Bob", "Rob"}, {"Ian", "Lan"},
		{"李小龙", "李小虎"}, {"さくら", "サクラ"}, {"🦊", "🐺"}, {"Zoe", "Zoë"},
		{"Alice", "Alice 2"}, {"Ali", "All"},
	}
	for _, p := range pairs {
		if clash(p[0], p[1]) {
			t.Errorf("%+q and %+q are different names but share a key: %q vs %q", p[0], p[1], keys(p[0]), keys(p[1]))
		}
	}
}

// TestKeysAreTotal: names stored before these rules still get a key.
func TestKeysAreTotal(t *testing.T) {
	if k := keys("Alice\u200b"); k != keys("Alice") {
		t.Errorf("stored Alice+ZWSP gets %q, want Alice's %q", k, keys("Alice"))
	}
	for _, s := range []string{"\u200b", "a\ue000", "\u0301"} {
		_ = keys(s) // must not panic
	}
}

func clash(a, b string) bool { return Key(a) == Key(b) || ShapeKey(a) == ShapeKey(b) }

func keys(s string) [2]string { return [2]string{Key(s), ShapeKey(s)} }

// BenchmarkHelloName is what the relay spends on a name per hello.
func BenchmarkHelloName(b *testing.B) {
	for _, name := range []string{"Alice", "family 👨\u200d👩\u200d👧", "Аlice Smith-Jones"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				n, err := Normalize(name)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = Key(n), ShapeKey(n)
			}
		})
	}
}
