// Package gwsession is the live-session bookkeeping every gateway shares:
// the registry of this node's live sessions behind the root package's
// airlock.Gateway contract (close by grant, user or session; list them;
// drain them on shutdown), and the per-user, per-grant concurrency slots
// of Target.MaxConcurrent.
//
// A gateway owns its sessions' lifecycle; the registry only knows each
// one's identity and how to end it (Session.Close). A gateway adds a
// session once it may be closed from outside, removes it when it has
// ended, and forwards its Close*, ActiveSessions and Shutdown methods to
// the registry:
//
//	func (g *Gateway) CloseGrant(id string, r airlock.EndReason) int { return g.sessions.CloseGrant(id, r) }
package gwsession

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// Session is one live session as the registry holds it. The identity
// fields must not change once it is added.
type Session struct {
	ID, UserID, GrantID, Resource, Node string
	StartedAt, EndsAt                   time.Time

	// Close ends the session with reason, telling its user why. The
	// registry calls it outside its lock, possibly concurrently with
	// itself and with Remove; it must be safe for that, and for a session
	// that has already ended. It does not have to wait for the session to
	// finish.
	Close func(reason airlock.EndReason)
	// Info, when set, returns the session's row with its counters so far
	// (ActiveSessions). Without it, the row is built from the fields above.
	Info func() airlock.Session
}

func (s *Session) info() airlock.Session {
	if s.Info != nil {
		return s.Info()
	}
	return airlock.Session{ID: s.ID, UserID: s.UserID, GrantID: s.GrantID, Resource: s.Resource, Node: s.Node, StartedAt: s.StartedAt}
}

// Registry is one gateway's live sessions. The zero value is ready to
// use; it is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	live     map[string]*Session
	slots    map[slotKey]int
	draining bool
	empty    chan struct{} // closed when the last session is removed; made by Wait
}

type slotKey struct{ userID, grantID string }

// Add registers s as live. It returns false, and does not register s,
// once Drain has been called: the gateway then ends s itself (as
// airlock.EndServerShutdown).
func (r *Registry) Add(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining {
		return false
	}
	if r.live == nil {
		r.live = map[string]*Session{}
	}
	r.live[s.ID] = s
	return true
}

// Remove unregisters s once it has ended; a session under the same ID that
// is not s stays.
func (r *Registry) Remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[s.ID] != s {
		return
	}
	delete(r.live, s.ID)
	if len(r.live) == 0 && r.empty != nil {
		close(r.empty)
		r.empty = nil
	}
}

// Reserve takes one of limit slots for a user's sessions under a grant
// (limit <= 0: no limit, but the slot still counts). It returns an
// idempotent release func, or ok false when all limit slots are taken.
// The check and the take are one step, so of two connections racing for
// the last slot exactly one gets it. A gateway reserves before it does the
// expensive part of a connection (dialling the target) and releases once
// the session is removed, or the connection refused.
func (r *Registry) Reserve(userID, grantID string, limit int) (release func(), ok bool) {
	k := slotKey{userID, grantID}
	r.mu.Lock()
	defer r.mu.Unlock()
	if limit > 0 && r.slots[k] >= limit {
		return nil, false
	}
	if r.slots == nil {
		r.slots = map[slotKey]int{}
	}
	r.slots[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.slots[k]--; r.slots[k] <= 0 {
				delete(r.slots, k)
			}
		})
	}, true
}

// CloseGrant closes every live session under grantID with reason
// (airlock.EndGrantRevoked when empty) and returns how many it closed.
func (r *Registry) CloseGrant(grantID string, reason airlock.EndReason) int {
	return r.closeWhere(func(s *Session) bool { return s.GrantID == grantID }, orDefault(reason, airlock.EndGrantRevoked))
}

// CloseUser closes every live session of userID with reason
// (airlock.EndUserDisabled when empty) and returns how many it closed.
func (r *Registry) CloseUser(userID string, reason airlock.EndReason) int {
	return r.closeWhere(func(s *Session) bool { return s.UserID == userID }, orDefault(reason, airlock.EndUserDisabled))
}

// CloseSession closes the live session id with reason
// (airlock.EndSessionKilled when empty) and reports whether it was live.
func (r *Registry) CloseSession(id string, reason airlock.EndReason) bool {
	return r.closeWhere(func(s *Session) bool { return s.ID == id }, orDefault(reason, airlock.EndSessionKilled)) > 0
}

// Drain makes Add refuse from now on and closes every live session with
// reason; it returns how many it closed. Wait then waits for them to be
// removed.
func (r *Registry) Drain(reason airlock.EndReason) int {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	return r.closeWhere(func(*Session) bool { return true }, reason)
}

// Wait blocks until no session is live or ctx is done (ctx.Err()).
func (r *Registry) Wait(ctx context.Context) error {
	r.mu.Lock()
	if len(r.live) == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.empty == nil {
		r.empty = make(chan struct{})
	}
	empty := r.empty
	r.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeWhere closes the matching sessions, each in its own goroutine, and
// returns how many once every Close has returned.
func (r *Registry) closeWhere(match func(*Session) bool, reason airlock.EndReason) int {
	r.mu.Lock()
	var hit []*Session
	for _, s := range r.live {
		if match(s) {
			hit = append(hit, s)
		}
	}
	r.mu.Unlock()
	switch len(hit) {
	case 0:
	case 1:
		hit[0].Close(reason)
	default:
		var wg sync.WaitGroup
		for _, s := range hit {
			wg.Go(func() { s.Close(reason) })
		}
		wg.Wait()
	}
	return len(hit)
}

// ActiveSessions returns a snapshot of the live sessions, oldest first.
func (r *Registry) ActiveSessions() []airlock.Session {
	r.mu.Lock()
	live := make([]*Session, 0, len(r.live))
	for _, s := range r.live {
		live = append(live, s)
	}
	r.mu.Unlock()
	out := make([]airlock.Session, 0, len(live))
	for _, s := range live {
		out = append(out, s.info())
	}
	slices.SortStableFunc(out, func(a, b airlock.Session) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}

// Count returns how many sessions are live.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// WaitGroup waits for wg or ctx, whichever is first (a gateway's
// Shutdown waiting for its connection handlers).
func WaitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func orDefault(r, d airlock.EndReason) airlock.EndReason {
	if r == "" {
		return d
	}
	return r
}
