package art

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPolygonEitherWinding(t *testing.T) {
	cw := Polygon(0.2, 0.2, 0.8, 0.2, 0.8, 0.8, 0.2, 0.8)
	ccw := Polygon(0.2, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8, 0.2)
	for _, p := range [][2]float64{{0.5, 0.5}, {0.1, 0.5}, {0.5, 0.9}, {0.21, 0.79}} {
		if a, b := cw(p[0], p[1]), ccw(p[0], p[1]); !near(a, b) {
			t.Errorf("at %v: %v vs %v; winding must not matter", p, a, b)
		}
	}
	if d := cw(0.5, 0.5); !near(d, -0.3) {
		t.Errorf("centre distance %v, want -0.3", d)
	}
	if d := cw(0.9, 0.5); !near(d, 0.1) {
		t.Errorf("outside distance %v, want 0.1", d)
	}
}

func TestHeartFitsItsBox(t *testing.T) {
	h := Heart(0.5, 0.5, 0.6)
	// Widest at the lobes, symmetric, centred: edges at 0.2 and 0.8.
	var left, right, top, bottom = 1.0, 0.0, 1.0, 0.0
	for y := 0.0; y <= 1; y += 0.002 {
		for x := 0.0; x <= 1; x += 0.002 {
			if h(x, y) < 0 {
				left, right = math.Min(left, x), math.Max(right, x)
				top, bottom = math.Min(top, y), math.Max(bottom, y)
			}
		}
	}
	if math.Abs(left-0.2) > 0.004 || math.Abs(right-0.8) > 0.004 {
		t.Errorf("heart spans x %.3f..%.3f, want 0.2..0.8", left, right)
	}
	if mid := (top + bottom) / 2; math.Abs(mid-0.5) > 0.004 {
		t.Errorf("heart spans y %.3f..%.3f (middle %.3f), want it centred on 0.5", top, bottom, mid)
	}
	if h(0.5, bottom+0.01) <= 0 || h(0.5, 0.5) >= 0 {
		t.Error("heart inside/outside wrong")
	}
}

func TestArcStaysInItsAngles(t *testing.T) {
	// A smile: the lower half of a circle.
	a := Arc(0.5, 0.5, 0.2, 0, math.Pi, 0.01)
	if d := a(0.5, 0.7); !near(d, -0.01) {
		t.Errorf("bottom of arc: %v, want -0.01", d)
	}
	if d := a(0.5, 0.3); d < 0.1 {
		t.Errorf("top of the circle is not on the arc, got distance %v", d)
	}
}

func TestHex(t *testing.T) {
	if c := Hex("#ff7a9a70"); c.R != 0xff || c.G != 0x7a || c.B != 0x9a || c.A != 0x70 {
		t.Errorf("Hex = %v", c)
	}
	defer func() {
		if recover() == nil {
			t.Error("Hex accepted a typo")
		}
	}()
	Hex("#ff7g9a")
}
