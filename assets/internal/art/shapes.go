package art

import "math"

// Distances are exact for circles, boxes, segments and arcs; combinations via
// Union/Intersect/Subtract are exact near edges, which is all anti-aliasing
// needs.

// Circle centred at (cx, cy) with radius r.
func Circle(cx, cy, r float64) SDF {
	return func(x, y float64) float64 { return math.Hypot(x-cx, y-cy) - r }
}

// Ellipse centred at (cx, cy) with radii rx, ry. The distance is a first-order
// approximation (value over gradient length), accurate within a pixel of the
// edge.
func Ellipse(cx, cy, rx, ry float64) SDF {
	return func(x, y float64) float64 {
		px, py := (x-cx)/rx, (y-cy)/ry
		k0 := math.Hypot(px, py)
		k1 := math.Hypot(px/rx, py/ry)
		if k1 == 0 {
			return -math.Min(rx, ry)
		}
		return k0 * (k0 - 1) / k1
	}
}

// RoundRect is a box centred at (cx, cy) with half sizes hw, hh and corner
// radius r.
func RoundRect(cx, cy, hw, hh, r float64) SDF {
	return func(x, y float64) float64 {
		qx := math.Abs(x-cx) - hw + r
		qy := math.Abs(y-cy) - hh + r
		out := math.Hypot(math.Max(qx, 0), math.Max(qy, 0))
		return out + math.Min(math.Max(qx, qy), 0) - r
	}
}

// Segment is a capsule: the stroke of width 2r from a to b with round caps.
func Segment(ax, ay, bx, by, r float64) SDF {
	return func(x, y float64) float64 { return segDist(x, y, ax, ay, bx, by) - r }
}

func segDist(x, y, ax, ay, bx, by float64) float64 {
	px, py := x-ax, y-ay
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = math.Max(0, math.Min(1, (px*dx+py*dy)/l2))
	}
	return math.Hypot(px-dx*t, py-dy*t)
}

// Polyline strokes the path through pts (x0, y0, x1, y1, ...) with width 2r,
// round joins and caps.
func Polyline(r float64, pts ...float64) SDF {
	if len(pts) < 4 || len(pts)%2 != 0 {
		panic("art: polyline needs at least two points")
	}
	return func(x, y float64) float64 {
		d := math.Inf(1)
		for i := 0; i+3 < len(pts); i += 2 {
			d = math.Min(d, segDist(x, y, pts[i], pts[i+1], pts[i+2], pts[i+3]))
		}
		return d - r
	}
}

// Polygon is a convex polygon through pts (x0, y0, x1, y1, ...), either
// winding. Inside, the distance is exact; outside near a corner it is
// underestimated, which keeps corners sharp.
func Polygon(pts ...float64) SDF {
	if len(pts) < 6 || len(pts)%2 != 0 {
		panic("art: polygon needs at least three points")
	}
	n := len(pts) / 2
	// Signed area tells the winding, so each edge's outward normal is known.
	area := 0.0
	for i := 0; i < n; i++ {
		j := (i + 1) % n
		area += pts[2*i]*pts[2*j+1] - pts[2*j]*pts[2*i+1]
	}
	sign := 1.0
	if area < 0 {
		sign = -1
	}
	type edge struct{ ax, ay, nx, ny float64 }
	edges := make([]edge, n)
	for i := 0; i < n; i++ {
		j := (i + 1) % n
		ex, ey := pts[2*j]-pts[2*i], pts[2*j+1]-pts[2*i+1]
		l := math.Hypot(ex, ey)
		// With y down and positive area the outward normal is (ey, -ex).
		edges[i] = edge{pts[2*i], pts[2*i+1], sign * ey / l, -sign * ex / l}
	}
	return func(x, y float64) float64 {
		d := math.Inf(-1)
		for _, e := range edges {
			d = math.Max(d, (x-e.ax)*e.nx+(y-e.ay)*e.ny)
		}
		return d
	}
}

// Arc strokes the part of the circle (cx, cy, R) between angles a0 and a1
// (radians, clockwise on screen since y points down; pi/2 is straight down)
// with width 2w and round caps.
func Arc(cx, cy, R, a0, a1, w float64) SDF {
	ax, ay := cx+R*math.Cos(a0), cy+R*math.Sin(a0)
	bx, by := cx+R*math.Cos(a1), cy+R*math.Sin(a1)
	return func(x, y float64) float64 {
		a := math.Atan2(y-cy, x-cx)
		for a < a0 {
			a += 2 * math.Pi
		}
		if a <= a1 {
			return math.Abs(math.Hypot(x-cx, y-cy)-R) - w
		}
		return math.Min(math.Hypot(x-ax, y-ay), math.Hypot(x-bx, y-by)) - w
	}
}

// Heart is a heart centred at (cx, cy), w wide: a square turned 45 degrees
// with a circle on each of its two upper sides.
func Heart(cx, cy, w float64) SDF {
	s := w / (1 + 1/math.Sqrt2) // square side: w = side + its half-diagonal
	h := s / math.Sqrt2         // centre-to-corner of the turned square
	// The bounding box's middle sits above the square's centre.
	sy := cy + (s*(0.5+math.Sqrt2/4)-h)/2
	square := Rotate(RoundRect(cx, sy, s/2, s/2, 0), cx, sy, math.Pi/4)
	left := Circle(cx-h/2, sy-h/2, s/2)
	right := Circle(cx+h/2, sy-h/2, s/2)
	return Union(square, left, right)
}

// Rotate turns s by angle a (radians) around (cx, cy).
func Rotate(s SDF, cx, cy, a float64) SDF {
	sin, cos := math.Sincos(-a)
	return func(x, y float64) float64 {
		dx, dy := x-cx, y-cy
		return s(cx+dx*cos-dy*sin, cy+dx*sin+dy*cos)
	}
}

// Mirror makes s symmetric about x = 0.5: the left half is drawn on both
// sides, so faces need only describe one eye, one ear, one cheek.
func Mirror(s SDF) SDF {
	return func(x, y float64) float64 { return s(0.5-math.Abs(x-0.5), y) }
}

// Offset grows s by r (shrinks for negative r); growing a polygon rounds its
// corners.
func Offset(s SDF, r float64) SDF {
	return func(x, y float64) float64 { return s(x, y) - r }
}

// Union of shapes.
func Union(ss ...SDF) SDF {
	return func(x, y float64) float64 {
		d := math.Inf(1)
		for _, s := range ss {
			d = math.Min(d, s(x, y))
		}
		return d
	}
}

// Intersect keeps what is inside both a and b.
func Intersect(a, b SDF) SDF {
	return func(x, y float64) float64 { return math.Max(a(x, y), b(x, y)) }
}

// Subtract cuts b out of a.
func Subtract(a, b SDF) SDF {
	return func(x, y float64) float64 { return math.Max(a(x, y), -b(x, y)) }
}

// Everything covers the whole canvas (backgrounds).
func Everything() SDF { return func(x, y float64) float64 { return -1 } }
