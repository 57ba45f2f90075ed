package pgproxy

import (
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/dbgw"
)

// A session's audit receipts are the database gateways' shared queue
// (dbgw.Receipts): events from both relay directions are confirmed in
// order, and the first failure kills the session.

// newReceipts is the session's queue; a failed receipt closes the session.
func (s *session) newReceipts() *dbgw.Receipts {
	return dbgw.NewReceipts(s.g.cfg.Audit, func(err error) {
		s.g.log.Error("pgproxy: audit receipt failed; closing session", "session", s.id, "err", err)
		s.kill(airlock.EndAuditUnavailable, codeAdminShutdown, msgAuditFailed)
	})
}

// submit hands e to the audit pipeline and queues its receipt.
func (s *session) submit(e airlock.Event) { s.receipts.Submit(e) }

// watch confirms receipts in order (its own goroutine).
func (s *session) watch() { s.receipts.Watch() }

// killSettleWait is how long a killed strict session waits for its
// receipts before it sends the FATAL message (it drops it otherwise).
const killSettleWait = 200 * time.Millisecond

// settledWithin flushes the audit pipeline and waits up to d for every
// receipt submitted so far to be durable; it reports whether they are.
func (s *session) settledWithin(d time.Duration) bool { return s.receipts.SettledWithin(d) }

// waitDurable blocks until every receipt submitted so far is durable, or
// the session is killed first.
func (s *session) waitDurable() error { return s.receipts.AwaitDurable(s.life.Done()) }
