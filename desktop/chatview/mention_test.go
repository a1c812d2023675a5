package chatview

import (
	"reflect"
	"testing"
)

func TestMentions(t *testing.T) {
	for _, c := range []struct {
		text, name string
		want       bool
	}{
		{"@Alice are you there?", "Alice", true},
		{"hey @alice chen, look", "Alice Chen", true},
		{"(@Alice)", "Alice", true},
		{"@Alicia hi", "Alice", false},
		{"mail alice@example.org", "example", false},
		{"email@Alice", "Alice", false},
		{"Alice without at", "Alice", false},
		{"@Al", "Alice", false},
		{"first @Bob then @Alice", "Alice", true},
		{"@Zoë!", "zoë", true},
		{"anything", "", false},
	} {
		if got := Mentions(c.text, c.name); got != c.want {
			t.Errorf("Mentions(%q, %q) = %v", c.text, c.name, got)
		}
	}
}

func TestMentionCompletion(t *testing.T) {
	text := "hi @al"
	q, ok := MentionAt(text, len(text))
	if !ok || q.At != 3 || q.Prefix != "al" {
		t.Fatalf("MentionAt = %+v %v", q, ok)
	}
	names := []string{"Bob", "alan", "Alice Chen", "Me Myself", "Alice Chen"}
	got := CompleteMention(q.Prefix, names, "Me Myself", 5)
	if !reflect.DeepEqual(got, []string{"alan", "Alice Chen"}) {
		t.Fatalf("candidates %q", got)
	}
	nt, cur := InsertMention(text, len(text), q, "Alice Chen")
	if nt != "hi @Alice Chen " || cur != len(nt) {
		t.Fatalf("inserted %q cursor %d", nt, cur)
	}
	if _, ok := MentionAt("mail a@b", 8); ok {
		t.Fatal("an address counted as a mention")
	}
	if _, ok := MentionAt("@a\nb", 4); ok {
		t.Fatal("a mention across lines")
	}
	if got := CompleteMention("", []string{"b", "a", "c"}, "", 2); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("limit: %q", got)
	}
}
