//go:build !unix

package netguard

// RaiseFileLimit does nothing where there are no rlimits; the zero
// FileLimit means "unknown".
func RaiseFileLimit() (FileLimit, error) { return FileLimit{}, nil }
