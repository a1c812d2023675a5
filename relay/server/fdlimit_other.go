//go:build !unix

package server

// openFileLimit is 0 (unknown) where the OS has no per-process descriptor
// limit to read; the connection cap then falls back to a fixed default.
func openFileLimit() int { return 0 }
