package netguard

// FileLimit is the process's RLIMIT_NOFILE after RaiseFileLimit.
type FileLimit struct {
	Soft, Hard uint64 // 0 when unknown (platforms without rlimits)
	Raised     bool   // RaiseFileLimit raised Soft (it was lower than Hard)
	Before     uint64 // the soft limit found
}

// MaxPendingFor returns lim with MaxPending at most a quarter of the
// process's soft file limit (when known), so that the unauthenticated
// connections of two gateways never take more than half the descriptors,
// and MaxPendingPerSource at most MaxPending. It reports whether it
// lowered a bound.
func MaxPendingFor(lim Limits, fl FileLimit) (Limits, bool) {
	lim = lim.WithDefaults()
	lowered := false
	if fl.Soft > 0 {
		if q := max(int(min(fl.Soft/4, uint64(1<<30))), 1); lim.MaxPending > q {
			lim.MaxPending, lowered = q, true
		}
	}
	if lim.MaxPendingPerSource > lim.MaxPending {
		lim.MaxPendingPerSource, lowered = lim.MaxPending, true
	}
	return lim, lowered
}
