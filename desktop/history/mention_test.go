package history

import (
	"testing"

	"github.com/heartline/heartline/shared/protocol"
)

func TestMentionsName(t *testing.T) {
	for _, c := range []struct {
		text, name string
		want       bool
	}{
		{"hi @Ana", "Ana", true},
		{"@ana: look", "Ana", true},
		{"(@ANA)", "Ana", true},
		{"@Ana's idea", "Ana", true},
		{"@Anabel hi", "Ana", false},
		{"@Ana_b", "Ana", false},
		{"mail ana@example.org", "ana", false},
		{"Ana without the at", "Ana", false},
		{"@ Ana", "Ana", false},
		{"thanks @Ana Lima!", "Ana Lima", true},
		{"thanks @Ana Limas", "Ana Lima", false},
		{"@ZOË look", "zoë", true},
		{"@Zoe\u0308 decomposed", "Zoë", true}, // NFD in the text
		{"@Zoë", "Zoe", false},                 // the diaeresis continues the word
		{"@Ωmega", "ωmega", true},
		{"@bob! and", "bob!", true},
		{"@bob!x", "bob!", true}, // a name ending in punctuation ends itself
		{"@🎉party", "🎉party", true},
		{"@@Ana", "Ana", true},
		{"@Ana", "", false},
		{"@", "Ana", false},
		{"@An", "Ana", false},
	} {
		if got := MentionsName(c.text, c.name); got != c.want {
			t.Errorf("MentionsName(%q, %q) = %v, want %v", c.text, c.name, got, c.want)
		}
	}
}

func TestFromProtocol(t *testing.T) {
	pm := protocol.Message{Seq: 7, ID: "c-1", From: protocol.Member{ID: "m9", Name: "Bruno", Avatar: "builtin:owl"}, Text: "hey @ana", TS: 1765000000000}
	m := FromProtocol("e1", pm, false, "Ana")
	if m.Epoch != "e1" || m.Seq != 7 || m.ID != "c-1" || m.MemberID != "m9" || m.Name != "Bruno" || m.Avatar != "builtin:owl" ||
		m.Text != "hey @ana" || m.TS != 1765000000000 || m.Own || !m.Mentions {
		t.Fatalf("%+v", m)
	}
	// Our own message never counts as a mention of us.
	if m := FromProtocol("e1", pm, true, "Ana"); m.Mentions || !m.Own {
		t.Fatalf("own: %+v", m)
	}
}

func TestGapFromWelcome(t *testing.T) {
	w := protocol.Welcome{Epoch: "e2", Seq: 60, History: []protocol.Message{{Seq: 12}, {Seq: 11}, {Seq: 60}}}
	if g := GapFromWelcome("e1", 40, w); g != (Gap{After: Ref{"e1", 40}, Before: Ref{"e2", 11}}) {
		t.Fatalf("%+v", g)
	}
	// An empty history: the gap runs up to whatever comes next.
	if g := GapFromWelcome("e1", 40, protocol.Welcome{Epoch: "e1", Seq: 90}); g != (Gap{After: Ref{"e1", 40}, Before: Ref{"e1", 91}}) {
		t.Fatalf("%+v", g)
	}
}
