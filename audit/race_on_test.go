//go:build race

package audit

// raceEnabled shrinks the largest fixtures under the race detector, which
// slows this package's hashing tenfold; the full sizes run without -race.
const raceEnabled = true
