//go:build !unix

package ui

import "time"

// cpuTime is not measured here (the measure command reports 0).
func cpuTime() time.Duration { return 0 }
