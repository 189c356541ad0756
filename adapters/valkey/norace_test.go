//go:build !race

package valkey_test

// raceEnabled is true under the race detector, which slows the Go side down.
const raceEnabled = false
