package audit

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/airlockhq/airlock"
)

// TestProbeRecoversWithoutTraffic: a log made unhealthy by failed writes
// becomes healthy again through Probe alone once the store can write,
// stays unhealthy while it cannot, and records the outage in one
// audit.recovered event; a healthy log's Probe writes nothing.
func TestProbeRecoversWithoutTraffic(t *testing.T) {
	store := &memStore{}
	l := openLog(t, store, Options{})
	if err := l.Probe(t.Context()); err != nil {
		t.Fatalf("Probe of a healthy log = %v", err)
	}
	if n := len(store.events); n != 0 {
		t.Fatalf("Probe of a healthy log wrote %d events", n)
	}
	store.setFail(errors.New("disk full"))
	for i := range 2 {
		if _, err := l.Append(t.Context(), sampleEvent(i)); err == nil {
			t.Fatal("Append on a failing store succeeded")
		}
	}
	if err := l.Probe(t.Context()); airlock.ErrorCode(err) != airlock.EUNAVAILABLE || airlock.ErrorCode(l.Healthy()) != airlock.EUNAVAILABLE {
		t.Fatalf("Probe while the store fails = %v, Healthy = %v; want both EUNAVAILABLE", err, l.Healthy())
	}
	store.setFail(nil)
	if err := l.Probe(t.Context()); err != nil {
		t.Fatalf("Probe after the store recovered = %v", err)
	}
	if err := l.Healthy(); err != nil {
		t.Fatalf("Healthy after Probe = %v", err)
	}
	store.mu.Lock()
	evs := append([]airlock.Event(nil), store.events...)
	store.mu.Unlock()
	if len(evs) != 1 || evs[0].Action != "audit.recovered" || evs[0].Actor != airlock.SystemActor {
		t.Fatalf("events after recovery = %+v, want one audit.recovered by system", evs)
	}
	var d struct {
		Failed int `json:"failed_writes"`
	}
	if err := json.Unmarshal(evs[0].Details, &d); err != nil || d.Failed != 3 {
		t.Fatalf("audit.recovered details %s: failed_writes want 3 (two appends, one probe)", evs[0].Details)
	}
}
