//go:build race

package crashtest

// Under `go test -race` the relay binary is built with -race too, and a
// data race it reports fails the test.
const raceEnabled = true
