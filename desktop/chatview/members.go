package chatview

import (
	"fmt"
	"hash/fnv"
	"image/color"
	"sort"
	"strings"
	"unicode"

	"github.com/heartline/heartline/shared/protocol"
)

// Roster is the room's member list as the members panel shows it.
type Roster struct {
	byID   map[string]protocol.Member
	sorted []protocol.Member // nil when it must be rebuilt
}

// Reset replaces the list (a welcome carries the full list).
func (r *Roster) Reset(members []protocol.Member) {
	r.byID = make(map[string]protocol.Member, len(members))
	for _, m := range members {
		r.byID[m.ID] = m
	}
	r.sorted = nil
}

// Put adds a member or updates one (joined, presence).
func (r *Roster) Put(m protocol.Member) {
	if r.byID == nil {
		r.byID = map[string]protocol.Member{}
	}
	r.byID[m.ID] = m
	r.sorted = nil
}

// Remove drops a member who left for good.
func (r *Roster) Remove(id string) {
	delete(r.byID, id)
	r.sorted = nil
}

// Get returns the member with id.
func (r *Roster) Get(id string) (protocol.Member, bool) {
	m, ok := r.byID[id]
	return m, ok
}

// Sorted lists online members first, then away ones, each by name
// (case-insensitively).
func (r *Roster) Sorted() []protocol.Member {
	if r.sorted != nil {
		return r.sorted
	}
	out := make([]protocol.Member, 0, len(r.byID))
	for _, m := range r.byID {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		ai, aj := out[i].State == protocol.StateAway, out[j].State == protocol.StateAway
		if ai != aj {
			return !ai
		}
		ni, nj := strings.ToLower(out[i].Name), strings.ToLower(out[j].Name)
		if ni != nj {
			return ni < nj
		}
		return out[i].ID < out[j].ID
	})
	r.sorted = out
	return out
}

// Len is the number of members.
func (r *Roster) Len() int { return len(r.byID) }

// Online is the number of members not away.
func (r *Roster) Online() int {
	n := 0
	for _, m := range r.byID {
		if m.State != protocol.StateAway {
			n++
		}
	}
	return n
}

// CountText heads the members panel: "3 members · 2 online".
func (r *Roster) CountText() string {
	n, on := r.Len(), r.Online()
	if n == 0 {
		return "Members"
	}
	word := "members"
	if n == 1 {
		word = "member"
	}
	if on == n {
		return fmt.Sprintf("%d %s online", n, word)
	}
	return fmt.Sprintf("%d %s · %d online", n, word, on)
}

// Initials are the letters drawn on an avatar without a picture: the first
// letter of the first two words ("Ada Lovelace" -> "AL", "Jean-Luc Picard" ->
// "JP"), or of the name.
func Initials(name string) string {
	fields := strings.FieldsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || r == '_' || r == '.'
	})
	var out []rune
	for _, f := range fields {
		for _, c := range f {
			if unicode.IsLetter(c) || unicode.IsDigit(c) {
				out = append(out, unicode.ToUpper(c))
				break
			}
		}
		if len(out) == 2 {
			break
		}
	}
	if len(out) == 0 {
		for _, c := range name {
			if !unicode.IsSpace(c) {
				return string(unicode.ToUpper(c))
			}
		}
		return "?"
	}
	return string(out)
}

// avatarPalette holds colours that white initials read well on, in light and
// dark themes alike.
var avatarPalette = []color.NRGBA{
	{0xc6, 0x28, 0x28, 0xff}, // red
	{0xad, 0x14, 0x57, 0xff}, // pink
	{0x6a, 0x1b, 0x9a, 0xff}, // purple
	{0x45, 0x27, 0xa0, 0xff}, // deep purple
	{0x28, 0x35, 0x93, 0xff}, // indigo
	{0x15, 0x65, 0xc0, 0xff}, // blue
	{0x02, 0x77, 0xbd, 0xff}, // light blue
	{0x00, 0x83, 0x8f, 0xff}, // cyan
	{0x00, 0x69, 0x5c, 0xff}, // teal
	{0x2e, 0x7d, 0x32, 0xff}, // green
	{0x55, 0x8b, 0x2f, 0xff}, // light green
	{0xef, 0x6c, 0x00, 0xff}, // orange
	{0xd8, 0x43, 0x15, 0xff}, // deep orange
	{0x4e, 0x34, 0x2e, 0xff}, // brown
	{0x37, 0x47, 0x4f, 0xff}, // blue grey
}

// AvatarColor derives a stable colour from a name, so a person keeps their
// colour on every screen and every run. Case and surrounding space do not matter.
func AvatarColor(name string) color.NRGBA {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(strings.TrimSpace(name))))
	return avatarPalette[h.Sum32()%uint32(len(avatarPalette))]
}
