package art

import (
	"image"
	"math"
)

// AvatarSize is the edge of every built-in avatar in pixels.
const AvatarSize = 256

// Avatars maps each built-in avatar name to its painter. Every avatar fills
// its square and keeps the character inside the inscribed circle, so clients
// may show it square, rounded or round.
var Avatars = map[string]func(*Canvas){
	"default": heartling,
	"fox":     fox,
	"owl":     owl,
	"cat":     cat,
	"bear":    bear,
	"frog":    frog,
	"penguin": penguin,
	"robot":   robot,
	"bunny":   bunny,
	"octopus": octopus,
}

// Avatar renders the named avatar at AvatarSize.
func Avatar(name string) (*image.RGBA, bool) {
	paint, ok := Avatars[name]
	if !ok {
		return nil, false
	}
	c := NewCanvas(AvatarSize)
	paint(c)
	return c.Image(), true
}

const (
	ink   = "#2b2238" // eyes, noses, mouths
	blush = "#ff7a9a70"
	shine = "#ffffffe0"
)

// background fills the square and lays a soft shadow where the character stands.
func background(c *Canvas, bg string) {
	c.FillColor(Everything(), Hex(bg))
	c.Soft(Ellipse(0.5, 0.9, 0.3, 0.05), Hex("#00000028"), 10)
}

// dotEyes draws two small round eyes with a highlight, mirrored about the middle.
func dotEyes(c *Canvas, x, y, r float64) {
	c.FillColor(Mirror(Circle(x, y, r)), Hex(ink))
	c.FillColor(Mirror(Circle(x+r*0.35, y-r*0.4, r*0.35)), Hex(shine))
}

// bigEyes draws white eyes with large pupils looking slightly inward.
func bigEyes(c *Canvas, x, y, r float64) {
	c.FillColor(Mirror(Circle(x, y, r)), Hex("#ffffff"))
	c.FillColor(Mirror(Circle(x+r*0.18, y+r*0.08, r*0.6)), Hex(ink))
	c.FillColor(Mirror(Circle(x+r*0.38, y-r*0.18, r*0.2)), Hex(shine))
}

func cheeks(c *Canvas, x, y, rx, ry float64) {
	c.Soft(Mirror(Ellipse(x, y, rx, ry)), Hex(blush), 6)
}

func smile(c *Canvas, cx, cy, r, w float64) {
	c.FillColor(Arc(cx, cy, r, math.Pi*0.2, math.Pi*0.8, w), Hex(ink))
}

// heartling, the default avatar: a round-cheeked heart, Heartline's mascot.
func heartling(c *Canvas) {
	background(c, "#6c7bff")
	body := Heart(0.5, 0.52, 0.66)
	c.FillColor(body, Hex("#ff5d73"))
	// A soft gleam on the left lobe makes it look round and glossy.
	c.Soft(Rotate(Ellipse(0.33, 0.36, 0.05, 0.028), 0.33, 0.36, -0.7), Hex("#ffffff90"), 5)
	dotEyes(c, 0.405, 0.47, 0.036)
	cheeks(c, 0.33, 0.56, 0.05, 0.03)
	smile(c, 0.5, 0.5, 0.07, 0.012)
}

func fox(c *Canvas) {
	background(c, "#2a9d8f")
	orange, dark := Hex("#f4844c"), Hex("#b94f22")
	ear := Offset(Polygon(0.2, 0.44, 0.25, 0.14, 0.45, 0.33), 0.02)
	c.FillColor(Mirror(ear), orange)
	c.FillColor(Mirror(Offset(Polygon(0.25, 0.38, 0.27, 0.22, 0.38, 0.32), 0.01)), dark)
	head := Union(
		Ellipse(0.5, 0.5, 0.29, 0.2),
		Offset(Polygon(0.25, 0.5, 0.75, 0.5, 0.5, 0.8), 0.025),
	)
	c.FillColor(head, orange)
	snout := Intersect(head, Mirror(Circle(0.38, 0.68, 0.15)))
	c.FillColor(snout, Hex("#fff3e6"))
	c.FillColor(Ellipse(0.5, 0.77, 0.045, 0.032), Hex(ink))
	dotEyes(c, 0.4, 0.5, 0.03)
	cheeks(c, 0.32, 0.6, 0.04, 0.025)
}

func owl(c *Canvas) {
	background(c, "#f2c14e")
	body, wing, belly := Hex("#6d4c7d"), Hex("#573b66"), Hex("#e9d8f0")
	c.FillColor(Mirror(Offset(Polygon(0.24, 0.34, 0.27, 0.14, 0.4, 0.27), 0.02)), body)
	c.FillColor(Ellipse(0.5, 0.55, 0.29, 0.33), body)
	c.FillColor(Mirror(Ellipse(0.23, 0.62, 0.07, 0.17)), wing)
	c.FillColor(Ellipse(0.5, 0.7, 0.17, 0.16), belly)
	// Feather chevrons on the belly.
	for i, y := range []float64{0.64, 0.72, 0.8} {
		for _, x := range []float64{0.44 + 0.03*float64(i%2), 0.56 - 0.03*float64(i%2)} {
			c.FillColor(Arc(x, y-0.03, 0.03, math.Pi*0.25, math.Pi*0.75, 0.007), Hex("#b79cc4"))
		}
	}
	c.FillColor(Mirror(Circle(0.385, 0.44, 0.115)), Hex("#ffd6a5"))
	bigEyes(c, 0.385, 0.44, 0.085)
	c.FillColor(Offset(Polygon(0.465, 0.52, 0.535, 0.52, 0.5, 0.59), 0.008), Hex("#f5922f"))
	c.FillColor(Mirror(Ellipse(0.43, 0.88, 0.035, 0.02)), Hex("#f5922f"))
}

func cat(c *Canvas) {
	background(c, "#c3b1e1")
	fur, stripe, pink := Hex("#8d99ae"), Hex("#6b768c"), Hex("#f4a7b9")
	c.FillColor(Mirror(Offset(Polygon(0.22, 0.46, 0.26, 0.16, 0.46, 0.34), 0.02)), fur)
	c.FillColor(Mirror(Offset(Polygon(0.26, 0.4, 0.28, 0.24, 0.39, 0.33), 0.01)), pink)
	head := Ellipse(0.5, 0.56, 0.31, 0.26)
	c.FillColor(head, fur)
	for _, x := range []float64{0.45, 0.5, 0.55} {
		c.FillColor(Intersect(head, Segment(x, 0.28, x, 0.36-math.Abs(x-0.5), 0.012)), stripe)
	}
	c.FillColor(Ellipse(0.5, 0.67, 0.12, 0.09), Hex("#e6eaf0"))
	c.FillColor(Mirror(Ellipse(0.39, 0.52, 0.035, 0.05)), Hex(ink))
	c.FillColor(Mirror(Circle(0.4, 0.505, 0.013)), Hex(shine))
	c.FillColor(Offset(Polygon(0.475, 0.62, 0.525, 0.62, 0.5, 0.648), 0.008), pink)
	c.FillColor(Mirror(Arc(0.475, 0.655, 0.025, math.Pi*0.1, math.Pi*0.9, 0.006)), Hex(ink))
	whisker := Hex("#ffffffc0")
	c.FillColor(Mirror(Segment(0.34, 0.64, 0.14, 0.6, 0.005)), whisker)
	c.FillColor(Mirror(Segment(0.34, 0.67, 0.15, 0.69, 0.005)), whisker)
	cheeks(c, 0.31, 0.62, 0.04, 0.025)
}

func bear(c *Canvas) {
	background(c, "#80c27f")
	fur, inner, muzzle := Hex("#8b5e3c"), Hex("#c49a6c"), Hex("#ecd3b0")
	c.FillColor(Mirror(Circle(0.27, 0.3, 0.1)), fur)
	c.FillColor(Mirror(Circle(0.27, 0.3, 0.055)), inner)
	c.FillColor(Circle(0.5, 0.56, 0.3), fur)
	c.FillColor(Ellipse(0.5, 0.67, 0.14, 0.11), muzzle)
	c.FillColor(Ellipse(0.5, 0.62, 0.05, 0.035), Hex(ink))
	c.FillColor(Mirror(Arc(0.475, 0.665, 0.025, math.Pi*0.1, math.Pi*0.9, 0.007)), Hex(ink))
	c.FillColor(Segment(0.5, 0.645, 0.5, 0.675, 0.007), Hex(ink))
	dotEyes(c, 0.39, 0.5, 0.032)
	cheeks(c, 0.3, 0.6, 0.045, 0.028)
}

func frog(c *Canvas) {
	background(c, "#8ecae6")
	green, light := Hex("#5cb85c"), Hex("#a8e6a1")
	c.FillColor(Mirror(Circle(0.33, 0.39, 0.12)), green)
	c.FillColor(Ellipse(0.5, 0.6, 0.35, 0.25), green)
	c.FillColor(Ellipse(0.5, 0.72, 0.22, 0.11), light)
	c.FillColor(Mirror(Circle(0.33, 0.39, 0.085)), Hex("#ffffff"))
	c.FillColor(Mirror(Ellipse(0.335, 0.395, 0.05, 0.035)), Hex(ink))
	c.FillColor(Mirror(Circle(0.35, 0.38, 0.014)), Hex(shine))
	c.FillColor(Arc(0.5, 0.46, 0.2, math.Pi*0.28, math.Pi*0.72, 0.011), Hex("#2f6b2f"))
	cheeks(c, 0.25, 0.6, 0.05, 0.03)
	c.FillColor(Mirror(Circle(0.46, 0.53, 0.008)), Hex("#2f6b2f"))
}

func penguin(c *Canvas) {
	background(c, "#ff9f80")
	head := Ellipse(0.5, 0.56, 0.3, 0.31)
	c.FillColor(head, Hex("#263238"))
	face := Intersect(Offset(head, -0.03), Union(Mirror(Circle(0.41, 0.58, 0.15)), Ellipse(0.5, 0.75, 0.2, 0.12)))
	c.FillColor(face, Hex("#f7f9fb"))
	dotEyes(c, 0.415, 0.55, 0.03)
	c.FillColor(Offset(Polygon(0.45, 0.625, 0.55, 0.625, 0.5, 0.69), 0.012), Hex("#f5a623"))
	cheeks(c, 0.33, 0.64, 0.045, 0.028)
}

func robot(c *Canvas) {
	background(c, "#ef476f")
	metal, side, screen := Hex("#d9e2ec"), Hex("#9fb3c8"), Hex("#243b53")
	c.FillColor(Segment(0.5, 0.34, 0.5, 0.21, 0.013), side)
	c.FillColor(Circle(0.5, 0.19, 0.045), Hex("#ffd166"))
	c.FillColor(Mirror(RoundRect(0.2, 0.57, 0.05, 0.09, 0.03)), side)
	c.FillColor(RoundRect(0.5, 0.57, 0.29, 0.23, 0.08), metal)
	c.FillColor(RoundRect(0.5, 0.51, 0.2, 0.085, 0.05), screen)
	c.Soft(Mirror(Circle(0.415, 0.51, 0.04)), Hex("#5eead4a0"), 8)
	c.FillColor(Mirror(Circle(0.415, 0.51, 0.032)), Hex("#5eead4"))
	c.FillColor(RoundRect(0.5, 0.68, 0.1, 0.035, 0.02), side)
	for _, x := range []float64{0.45, 0.5, 0.55} {
		c.FillColor(Segment(x, 0.66, x, 0.70, 0.006), screen)
	}
	cheeks(c, 0.31, 0.64, 0.04, 0.025)
}

func bunny(c *Canvas) {
	background(c, "#ffafcc")
	fur, pink := Hex("#fff8f0"), Hex("#f4a7b9")
	c.FillColor(Mirror(Rotate(Ellipse(0.39, 0.27, 0.065, 0.18), 0.39, 0.4, -0.15)), fur)
	c.FillColor(Mirror(Rotate(Ellipse(0.39, 0.28, 0.033, 0.13), 0.39, 0.4, -0.15)), pink)
	c.FillColor(Ellipse(0.5, 0.62, 0.27, 0.23), fur)
	dotEyes(c, 0.41, 0.58, 0.03)
	c.FillColor(Ellipse(0.5, 0.655, 0.03, 0.02), Hex("#e5738f"))
	c.FillColor(Mirror(Arc(0.48, 0.68, 0.02, math.Pi*0.1, math.Pi*0.9, 0.006)), Hex(ink))
	cheeks(c, 0.33, 0.67, 0.045, 0.028)
}

func octopus(c *Canvas) {
	background(c, "#264653")
	skin, spot := Hex("#f28482"), Hex("#e06666")
	for _, x0 := range []float64{0.3, 0.4, 0.5, 0.6, 0.7} {
		// Each tentacle sways out from the middle and curls at its tip.
		dir := math.Copysign(1, x0-0.5)
		if x0 == 0.5 {
			dir = 0
		}
		pts := []float64{}
		for i := 0; i <= 12; i++ {
			t := float64(i) / 12
			x := x0 + dir*0.08*t + 0.025*math.Sin(t*math.Pi*2+x0*10)
			pts = append(pts, x, 0.56+0.3*t)
		}
		c.FillColor(Polyline(0.035, pts...), skin)
	}
	head := Union(Circle(0.5, 0.44, 0.24), RoundRect(0.5, 0.58, 0.24, 0.08, 0.06))
	c.FillColor(head, skin)
	c.FillColor(Intersect(head, Circle(0.36, 0.3, 0.035)), spot)
	c.FillColor(Intersect(head, Circle(0.62, 0.27, 0.025)), spot)
	c.FillColor(Intersect(head, Circle(0.66, 0.36, 0.018)), spot)
	bigEyes(c, 0.415, 0.48, 0.055)
	smile(c, 0.5, 0.53, 0.045, 0.01)
	cheeks(c, 0.33, 0.58, 0.04, 0.025)
}
