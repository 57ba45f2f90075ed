package access

import (
	"context"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
)

// sweepWorkers bounds concurrent audit writes when the auditor cannot
// pipeline; their events then share group commits.
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
		gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{DueBefore: now, Limit: sweepPage})
		if err != nil {
			return expired, err
		}
		if len(gs) == 0 {
			break
		}
		n := s.expireGrants(ctx, gs)
		expired += n
		if n == 0 || len(gs) < sweepPage {
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

// sweepPage is how many due grants one sweep step handles: their audit
// events are submitted together and their expiry is one transaction.
const sweepPage = 100000

// pipelined is an auditor with a pipelined form (audit.Log.Pipeline):
// events are submitted without waiting, so a sweep's events share group
// commits, and flushed, so that they do not wait out the log's MaxDelay.
type pipelined interface {
	Pipeline() airlock.AuditPipeline
}

// expireGrants records the expiry of gs: the audit events first (all
// durable before any state changes — audit first, fail closed), then one
// batched store update, then the revocations.
func (s *Service) expireGrants(ctx context.Context, gs []*airlock.Grant) int {
	now := s.now().UTC()
	events := make([]airlock.Event, len(gs))
	for i, g := range gs {
		events[i] = airlock.Event{Actor: airlock.SystemActor, Action: "grant.expired", Resource: g.Resource, RequestID: g.RequestID, GrantID: g.ID,
			Outcome: airlock.OutcomeSuccess, Details: airlock.EventDetails("user", g.UserName, "reason", "ends_at reached", "ends_at", g.EndsAt)}
	}
	seqs, err := s.recordBatch(ctx, events)
	if err != nil {
		s.log.Error("audit grant expiries; will retry on the next sweep", "grants", len(gs), "err", err)
	}
	// Only the grants whose event is durable are expired; the others wait
	// for the next sweep.
	var ids []string
	for i, g := range gs {
		if seqs[i] > 0 {
			ids = append(ids, g.ID)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	changed, err := s.store.ExpireGrants(ctx, ids, now)
	if err != nil {
		s.log.Error("expire grants", "grants", len(ids), "err", err)
	}
	// Every durable grant.expired whose grant did not change is retracted:
	// the store failed, or the grant had ended otherwise meanwhile.
	done := make(map[string]bool, len(changed))
	for _, id := range changed {
		done[id] = true
	}
	for i, g := range gs {
		if seqs[i] > 0 && !done[g.ID] {
			cause := err
			if cause == nil {
				cause = airlock.Errorf(airlock.ECONFLICT, "grant %s had already ended", g.ID)
			}
			audit.Retract(ctx, s.audit, s.log, events[i], seqs[i], cause)
		}
	}
	for _, g := range gs {
		if done[g.ID] {
			s.bus.Publish(airlock.Revocation{GrantID: g.ID, Reason: airlock.EndGrantExpired, By: airlock.SystemActor.Name, Detail: "grant expired at " + g.EndsAt.UTC().Format(time.RFC3339)})
		}
	}
	return len(changed)
}

// recordBatch makes every event durable, pipelined when the auditor can,
// and returns each one's seq (0 where it failed) and the first failure.
// It waits for every event without regard to ctx, so that a seq of 0
// means the event is not stored.
func (s *Service) recordBatch(ctx context.Context, events []airlock.Event) ([]int64, error) {
	ctx = context.WithoutCancel(ctx)
	seqs := make([]int64, len(events))
	if pa, ok := s.audit.(pipelined); ok {
		b := pa.Pipeline()
		receipts := make([]airlock.AuditPending, len(events))
		for i, e := range events {
			receipts[i] = b.Submit(e)
		}
		b.Flush()
		var first error
		for i, r := range receipts {
			<-r.Done() // without regard to ctx (see above)
			err := r.Err()
			if err != nil && first == nil {
				first = err
			}
			if err == nil {
				seqs[i] = r.Seq()
			}
		}
		return seqs, first
	}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	ch := make(chan int)
	for i := 0; i < sweepWorkers && i < len(events); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				seq, err := s.audit.Record(ctx, events[i])
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					seqs[i] = seq
				}
				mu.Unlock()
			}
		}()
	}
	for i := range events {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return seqs, first
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
