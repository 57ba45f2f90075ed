//go:build unix

package netguard

import "syscall"

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the limits in force. Go's runtime does the same at start-up
// since Go 1.19; calling it again is harmless and makes the limit the
// server runs with its own, tested decision. On macOS the kernel caps the
// soft limit at OPEN_MAX-like values; a refused raise keeps the old limit
// and is reported as an error together with it.
func RaiseFileLimit() (FileLimit, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return FileLimit{}, err
	}
	fl := FileLimit{Soft: uint64(lim.Cur), Hard: uint64(lim.Max), Before: uint64(lim.Cur)}
	if lim.Cur >= lim.Max {
		return fl, nil
	}
	want := lim
	want.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fl, err
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fl, err
	}
	fl.Soft, fl.Hard, fl.Raised = uint64(lim.Cur), uint64(lim.Max), uint64(lim.Cur) > fl.Before
	return fl, nil
}
