//go:build !unix

package main

// lockDataDir is a no-op where flock(2) is not available.
func lockDataDir(dir string) (unlock func(), err error) { return func() {}, nil }
