package stream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock"
)

// Store is what a Streamer reads and records in.
type Store interface {
	airlock.StreamStore
	ListEvents(ctx context.Context, f airlock.EventFilter) ([]airlock.Event, error)
	AuditHead(ctx context.Context) (airlock.AuditHead, error)
}

// Alert actions, recorded once per episode by the lease holder.
const (
	ActionBehind    = "audit.stream.behind"
	ActionFailing   = "audit.stream.failing"
	ActionRecovered = "audit.stream.recovered"
)

// Options configure Start.
type Options struct {
	Store Store
	// Auditor records the alert events (the server's audit log).
	Auditor airlock.Auditor
	// Holder names this server in leases (unique per process).
	Holder string
	Logger *slog.Logger
	// Registerer, when set, receives the metrics.
	Registerer prometheus.Registerer
	// Now is the clock leases, settling, alerts and rotation go by.
	Now func() time.Time
	// NewSink builds a sink (default NewSink); tests wrap it.
	NewSink func(SinkConfig, SinkOptions) (Sink, error)
}

// Streams runs one Streamer per configured sink.
type Streams struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	list   []*Streamer
}

// Start builds every sink of c and starts streaming to each in its own
// goroutine. It fails, starting nothing, when a sink cannot be built (a
// missing CA or token file). Close stops them.
func Start(ctx context.Context, c *Config, o Options) (*Streams, error) {
	if o.Store == nil || o.Auditor == nil || o.Holder == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "audit streams: store, auditor and holder are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewSink == nil {
		o.NewSink = NewSink
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	ss := &Streams{}
	for _, sc := range c.Sinks {
		sink, err := o.NewSink(sc, SinkOptions{Now: o.Now})
		if err != nil {
			for _, s := range ss.list {
				s.sink.Close()
			}
			return nil, err
		}
		ss.list = append(ss.list, &Streamer{cfg: sc, sink: sink, o: o, m: m, log: o.Logger.With("sink", sc.Name)})
	}
	ctx, ss.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, s := range ss.list {
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			s.Run(ctx)
		}()
	}
	return ss, nil
}

// Close stops every streamer, releases their leases and closes the sinks.
// What was sent but not yet settled is sent again by the next holder.
func (ss *Streams) Close() {
	ss.cancel()
	ss.wg.Wait()
}

// Streamer delivers the audit log to one sink (see the package doc).
type Streamer struct {
	cfg  SinkConfig
	sink Sink
	o    Options
	m    *metrics
	log  *slog.Logger

	// The alert state of the current episode.
	failingSince  time.Time
	lastErr       error
	alertedFail   bool
	alertedBehind bool
	headAt        time.Time
	head          int64
}

// sent is a batch sent but not yet settled.
type sent struct {
	last int64
	at   time.Time
}

const (
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
	headPoll = time.Second // how often the lag is measured
)

// Run streams until ctx ends, taking the sink's lease whenever it is free.
func (s *Streamer) Run(ctx context.Context) {
	defer s.sink.Close()
	name := s.cfg.Name
	for ctx.Err() == nil {
		now := s.o.Now()
		cur, ok, err := s.o.Store.LeaseStream(ctx, name, s.o.Holder, now, now.Add(s.cfg.Lease))
		if err != nil {
			s.log.Warn("audit stream: cannot take the lease", "err", err)
		}
		if err != nil || !ok {
			if !wait(ctx, s.cfg.Lease/3) {
				return
			}
			continue
		}
		s.m.leader.WithLabelValues(name).Set(1)
		s.log.Info("audit stream: streaming", "from_seq", cur.Seq+1)
		s.stream(ctx, cur.Seq)
		s.m.leader.WithLabelValues(name).Set(0)
		s.sink.Reset()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := s.o.Store.ReleaseStream(rctx, name, s.o.Holder); err != nil {
			s.log.Warn("audit stream: cannot release the lease", "err", err)
		}
		cancel()
	}
}

// stream sends from confirmed on while the lease holds and ctx lives.
func (s *Streamer) stream(ctx context.Context, confirmed int64) {
	name := s.cfg.Name
	next := confirmed
	var pending []sent
	renewAt := s.o.Now().Add(s.cfg.Lease / 3)
	backoff := retryMin
	s.m.cursor.WithLabelValues(name).Set(float64(confirmed))
	fail := func(err error) {
		s.m.failures.WithLabelValues(name).Inc()
		if s.failingSince.IsZero() {
			s.failingSince = s.o.Now()
			s.log.Warn("audit stream: send failed; resending from the cursor", "cursor", confirmed, "err", err)
		} else {
			s.log.Debug("audit stream: send failed again", "cursor", confirmed, "err", err)
		}
		s.lastErr = err
		s.sink.Reset()
		next, pending = confirmed, nil
	}
	for ctx.Err() == nil {
		now := s.o.Now()
		if !now.Before(renewAt) {
			if _, ok, err := s.o.Store.LeaseStream(ctx, name, s.o.Holder, now, now.Add(s.cfg.Lease)); err != nil || !ok {
				s.log.Warn("audit stream: lease lost; stopping", "err", err)
				return
			}
			renewAt = now.Add(s.cfg.Lease / 3)
		}
		// Settle what has been up long enough.
		if len(pending) > 0 {
			if err := s.sink.Alive(); err != nil {
				fail(err)
			} else {
				settled := int64(-1)
				cut := now.Add(-s.sink.Settle())
				i := 0
				for ; i < len(pending) && !pending[i].at.After(cut); i++ {
					settled = pending[i].last
				}
				if settled >= 0 {
					ok, err := s.o.Store.AdvanceStream(ctx, name, s.o.Holder, settled, now)
					if err != nil {
						s.log.Warn("audit stream: cannot store the cursor", "err", err)
					} else if !ok {
						s.log.Warn("audit stream: lease lost; stopping")
						return
					} else {
						confirmed = settled
						pending = append(pending[:0], pending[i:]...)
						s.m.cursor.WithLabelValues(name).Set(float64(confirmed))
						// A failure clears pending, so what settled was sent after
						// the last failure: the sink delivers again.
						s.recovered(ctx)
					}
				}
			}
		}
		s.alerts(ctx, confirmed)
		evs, err := s.o.Store.ListEvents(ctx, airlock.EventFilter{AfterSeq: next, Limit: s.cfg.Batch})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("audit stream: cannot read the log", "err", err)
			if !wait(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, retryMax)
			continue
		}
		if len(evs) == 0 {
			d := s.cfg.Poll
			if len(pending) > 0 {
				d = min(d, max(time.Millisecond, pending[0].at.Add(s.sink.Settle()).Sub(now)))
			}
			if !wait(ctx, d) {
				return
			}
			continue
		}
		if err := s.sink.Send(ctx, evs); err != nil {
			if ctx.Err() != nil {
				return
			}
			fail(err)
			if !wait(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, retryMax)
			continue
		}
		backoff = retryMin
		s.m.sent.WithLabelValues(name).Add(float64(len(evs)))
		next = evs[len(evs)-1].Seq
		pending = append(pending, sent{last: next, at: s.o.Now()})
		if len(pending) > 4096 { // bounded: merge into the newest
			pending = append(pending[:0], pending[len(pending)-1])
		}
	}
}

// alerts measures the lag (at most every headPoll) and records the
// behind and failing alerts, once per episode.
func (s *Streamer) alerts(ctx context.Context, confirmed int64) {
	now := s.o.Now()
	if now.Sub(s.headAt) >= headPoll {
		if h, err := s.o.Store.AuditHead(ctx); err == nil {
			s.head, s.headAt = h.Seq, now
		}
	}
	lag := max(s.head-confirmed, 0)
	s.m.lag.WithLabelValues(s.cfg.Name).Set(float64(lag))
	if lag > s.cfg.AlertLag && !s.alertedBehind {
		s.alertedBehind = s.record(ctx, ActionBehind, airlock.EventDetails("sink", s.cfg.Name, "lag", lag, "cursor", confirmed, "head", s.head, "threshold", s.cfg.AlertLag))
	}
	if !s.failingSince.IsZero() && !s.alertedFail && now.Sub(s.failingSince) >= s.cfg.AlertAfter {
		s.alertedFail = s.record(ctx, ActionFailing, airlock.EventDetails("sink", s.cfg.Name, "since", s.failingSince.UTC(), "cursor", confirmed, "error", errText(s.lastErr)))
	}
	if s.alertedBehind && lag <= s.cfg.AlertLag/2 && s.failingSince.IsZero() {
		if s.record(ctx, ActionRecovered, airlock.EventDetails("sink", s.cfg.Name, "was", "behind", "lag", lag)) {
			s.alertedBehind = false
		}
	}
}

// recovered ends a failing episode once a send has settled.
func (s *Streamer) recovered(ctx context.Context) {
	if s.failingSince.IsZero() {
		return
	}
	if s.alertedFail {
		if !s.record(ctx, ActionRecovered, airlock.EventDetails("sink", s.cfg.Name, "was", "failing", "since", s.failingSince.UTC())) {
			return
		}
	}
	s.log.Info("audit stream: delivering again", "failing_since", s.failingSince)
	s.failingSince, s.alertedFail, s.lastErr = time.Time{}, false, nil
}

func (s *Streamer) record(ctx context.Context, action string, details []byte) bool {
	_, err := s.o.Auditor.Record(ctx, airlock.Event{Actor: airlock.SystemActor, Action: action, Outcome: outcomeOf(action), Details: details})
	if err != nil {
		s.log.Warn("audit stream: cannot record the alert", "action", action, "err", err)
		return false
	}
	return true
}

func outcomeOf(action string) string {
	if action == ActionRecovered {
		return airlock.OutcomeSuccess
	}
	return airlock.OutcomeFailure
}

// errText is a send error for an alert: the sinks' errors name an address
// or URL and a cause, never a token.
func errText(err error) string {
	if err == nil {
		return ""
	}
	t := err.Error()
	if len(t) > 300 {
		t = t[:300]
	}
	return t
}

// wait waits d or until ctx ends, and reports whether ctx is still alive.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
