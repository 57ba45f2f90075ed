package access

import (
	"context"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// sweepWorkers bounds how many grant expiries are recorded at once; their
// audit events share group commits.
const sweepWorkers = 64

// Sweep records the expiry of every grant whose ends_at has passed and of
// pending requests past their TTL, fans grant expiries out on the bus, and
// picks up a policy applied by another replica. It returns how many grants
// it expired. Correctness never depends on it running: checks compare
// against ends_at.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	if err := s.reloadPolicy(ctx); err != nil {
		s.log.Error("reload policy", "err", err)
	}
	now := s.now()
	expired := 0
	for {
		gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{DueBefore: now, Limit: 10000})
		if err != nil {
			return expired, err
		}
		if len(gs) == 0 {
			break
		}
		n := s.expireGrants(ctx, gs)
		expired += n
		if n == 0 || len(gs) < 10000 {
			break
		}
	}
	reqs, err := s.store.ListRequests(ctx, airlock.RequestFilter{State: airlock.RequestPending})
	if err != nil {
		return expired, err
	}
	for _, r := range reqs {
		if !now.Before(r.ExpiresAt) {
			s.expireRequest(ctx, r)
		}
	}
	return expired, nil
}

func (s *Service) expireGrants(ctx context.Context, gs []*airlock.Grant) int {
	ch := make(chan *airlock.Grant)
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for i := 0; i < sweepWorkers && i < len(gs); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range ch {
				if err := s.endGrant(ctx, g, airlock.GrantExpired, airlock.SystemActor, "ends_at reached"); err != nil {
					s.log.Error("expire grant", "grant", g.ID, "err", err)
					continue
				}
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	for _, g := range gs {
		ch <- g
	}
	close(ch)
	wg.Wait()
	return n
}

// RunSweeper calls Sweep every interval until ctx ends.
func (s *Service) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
