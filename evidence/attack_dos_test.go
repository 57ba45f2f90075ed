package evidence

import (
	"bytes"
	"runtime"
	"testing"
)

// TestAttackSmallPackLargeMemory: with no --pubkey (the key in the pack is
// used) a pack is the attacker's own, signed with their own key, and its
// manifest may declare any JSON view up to maxJSONFile (1 GiB). A
// sessions.json of "{}," repeated inflates from a small zip, is read whole
// and decoded into one airlock.Session per three bytes before any check
// looks at it. Measured here with 1 MiB of it; the test fails when the
// allocation, scaled to the 1 GiB a view may be, is more than 4 GiB from a
// pack of a few MiB.
func TestAttackSmallPackLargeMemory(t *testing.T) {
	f := newFixture(t)
	pack := f.pack(t)
	const n = 1 << 20
	body := append([]byte("["), bytes.Repeat([]byte("{},"), n/3)...)
	body = append(body, "{}]"...)
	bad := rewrite(t, f, pack, signed, func(m map[string][]byte) { m[fileSessions] = body })
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Verify(bytes.NewReader(bad), int64(len(bad)), nil)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	scale := float64(maxJSONFile) / float64(len(body))
	t.Logf("pack %d bytes (sessions.json %d bytes inflated); Verify allocated %d bytes (%.0f× the inflated view), err %v; at the %d-byte limit ≈ %.1f GiB from a pack of ≈ %.1f MiB",
		len(bad), len(body), alloc, float64(alloc)/float64(len(body)), err, maxJSONFile, float64(alloc)*scale/(1<<30), float64(len(bad))*scale/(1<<20))
	if float64(alloc)*scale > 4<<30 {
		t.Errorf("a pack of ≈ %.1f MiB can make Verify allocate ≈ %.1f GiB", float64(len(bad))*scale/(1<<20), float64(alloc)*scale/(1<<30))
	}
}
