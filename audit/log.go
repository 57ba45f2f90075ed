package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Log.
type Options struct {
	// Signer signs checkpoints. Required.
	Signer ed25519.PrivateKey
	// KeyID names Signer in checkpoints; default KeyID(public key).
	KeyID string
	// CheckpointEvery is the number of events after which a checkpoint is
	// written (default 1000).
	CheckpointEvery int
	// CheckpointInterval is the longest time new events go without a
	// checkpoint (default 10s).
	CheckpointInterval time.Duration
	// MaxBatch is the most events written in one store transaction
	// (default 4096).
	MaxBatch int
	// Linger, when positive, is how long the writer waits for a small
	// queue to grow before committing it (group commit). It adds at most
	// Linger to each append's latency and saves CPU under load. With 0 the
	// writer gathers adaptively: after a commit it waits, while events keep
	// arriving (each within gatherGap of the last, gatherMax in all), for
	// the queue to reach the size of the batch it just wrote — the writers
	// that batch released coming back with their next event.
	Linger time.Duration
	// MaxDelay, when positive, lets events from Submit wait in the queue
	// up to MaxDelay for company before the writer commits them, so that
	// a steady stream (a gateway's statements) costs one commit per
	// MaxDelay instead of one per few events. Nobody waits longer for it:
	// Append, Flush, a half-full batch (MaxBatch/2) and Close commit the
	// queue at once. 0 commits as soon as the writer is free.
	MaxDelay time.Duration
	// MaxQueue is the most events waiting to be written; Submit and Append
	// block while the queue is full (default 64 × MaxBatch).
	MaxQueue int
	// Now is the clock of record (default time.Now).
	Now func() time.Time
	// Logger receives write failures (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, receives the log's Prometheus metrics.
	Registerer prometheus.Registerer
	// Witnesses receive every checkpoint after it is stored, each from a
	// goroutine of its own (see Witness).
	Witnesses []Witness
}

// Checkpoint cadence defaults (Options.CheckpointEvery, CheckpointInterval).
const (
	defaultCheckpointEvery    = 1000
	defaultCheckpointInterval = 10 * time.Second
)

// ErrClosed is the cause of the error for events submitted after Close.
var ErrClosed = errors.New("audit: log closed")

// Log is the hash-chained, group-committed audit log. It implements
// airlock.Auditor. All methods are safe for concurrent use.
//
// One writer goroutine drains the queue: it takes whatever is queued (up to
// MaxBatch), and calls store.AppendEvents once, assigning Seq, PrevHash and
// Hash from the head the store hands it under its write lock, so several
// Logs (processes) on one PostgreSQL still form one chain.
type Log struct {
	store  airlock.AuditStore
	opts   Options
	pub    ed25519.PublicKey
	log    *slog.Logger
	m      *metrics
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	space   *sync.Cond // signalled when the queue shrinks or the log closes
	queue   []*Receipt
	spare   []*Receipt
	open    *commit // the commit new receipts join; nil: start one
	openN   int     // receipts in open
	closing bool
	health  error
	// downSince and downWrites: when the current run of failed writes
	// began and how many failed (zero while healthy), for Probe's event.
	downSince  time.Time
	downWrites int
	urgent     bool      // someone waits: commit the queue without MaxDelay
	firstAt    time.Time // when the queue last became non-empty
	// owed are retained events (RecordRetained) whose write failed: each
	// later write stores them ahead of its batch, and the writer retries
	// them every retainRetry while nothing else is written.
	owed []airlock.Event

	probeMu sync.Mutex
	probe   *Receipt // Probe's event in flight, if any

	wake    chan struct{} // cap 1: there is work
	stopped chan struct{} // closed when the writer has exited

	fullTiles tlog.FullTiles // full Merkle tiles, for the checkpoints' roots

	witnesses []*witnessRunner
	wcancel   context.CancelFunc // ends the witnesses' deliveries
	wstop     sync.Once

	// Owned by the writer goroutine.
	gatherT    *time.Timer
	cur        []*Receipt
	curOwed    []airlock.Event // the owed events the current write carries first
	events     []airlock.Event
	h          hasher
	build      func(airlock.AuditHead) ([]airlock.Event, error)
	lastSeq    int64
	lastHash   string
	sinceCP    int
	checkpoint int64 // seq of the last checkpoint this Log wrote
}

// Receipt is the pending result of Submit.
type Receipt struct {
	ev     airlock.Event
	c      *commit
	seq    int64 // set before c.done closes
	retain bool  // on failure, keep ev in Log.owed and write it later
}

// commit is one store write: the receipts of one batch share it, so a
// batch closes one channel instead of one per event. The writer takes
// exactly one commit's receipts per batch (see take), so a commit's done
// never closes before all of its events are durable.
type commit struct {
	done chan struct{}
	err  error // set before done closes
}

// Done returns a channel closed when the event is durable or has failed.
func (r *Receipt) Done() <-chan struct{} { return r.c.done }

// Err returns the failure of a completed receipt; nil while pending or
// after success.
func (r *Receipt) Err() error {
	select {
	case <-r.c.done:
		return r.c.err
	default:
		return nil
	}
}

func (r *Receipt) done() bool {
	select {
	case <-r.c.done:
		return true
	default:
		return false
	}
}

// Seq returns the event's sequence number once durable; 0 otherwise.
func (r *Receipt) Seq() int64 {
	select {
	case <-r.c.done:
		return r.seq
	default:
		return 0
	}
}

// Wait blocks until the event is durable (returning its Seq), it failed, or
// ctx ends. When ctx ends first the event may still become durable later.
func (r *Receipt) Wait(ctx context.Context) (int64, error) {
	select {
	case <-r.c.done:
		return r.seq, r.c.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func failed(err error) *Receipt {
	c := &commit{done: make(chan struct{}), err: err}
	close(c.done)
	return &Receipt{c: c}
}

// Open starts a Log on store. It reads the store's head to fail early when
// the store is unreachable. Close it to flush and stop.
func Open(ctx context.Context, store airlock.AuditStore, opts Options) (*Log, error) {
	if store == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "audit: no store")
	}
	if len(opts.Signer) != ed25519.PrivateKeySize {
		return nil, airlock.Errorf(airlock.EINVALID, "audit: a checkpoint signing key (ed25519) is required")
	}
	pub := opts.Signer.Public().(ed25519.PublicKey)
	if opts.KeyID == "" {
		opts.KeyID = KeyID(pub)
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = defaultCheckpointEvery
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = defaultCheckpointInterval
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 64 * opts.MaxBatch
	}
	if opts.MaxQueue < opts.MaxBatch {
		opts.MaxQueue = opts.MaxBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	head, err := store.AuditHead(ctx)
	if err != nil {
		return nil, airlock.WrapError(airlock.EUNAVAILABLE, "audit log store is unavailable", err)
	}
	l := &Log{
		store:      store,
		opts:       opts,
		pub:        pub,
		log:        opts.Logger,
		m:          m,
		wake:       make(chan struct{}, 1),
		stopped:    make(chan struct{}),
		lastSeq:    head.Seq,
		lastHash:   head.Hash,
		checkpoint: head.Seq,
	}
	l.space = sync.NewCond(&l.mu)
	l.build = l.buildBatch
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	var wctx context.Context
	wctx, l.wcancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, w := range opts.Witnesses {
		r := newWitnessRunner(w, l.log, m)
		l.witnesses = append(l.witnesses, r)
		go r.run(wctx)
	}
	go l.run()
	return l, nil
}

// PublicKey returns the public half of the checkpoint signing key.
func (l *Log) PublicKey() ed25519.PublicKey { return l.pub }

// Record implements airlock.Auditor; it is Append.
func (l *Log) Record(ctx context.Context, e airlock.Event) (int64, error) { return l.Append(ctx, e) }

// retainRetry is how often the writer retries owed events while nothing
// else is written.
const retainRetry = time.Second

// RecordRetained is Append for an event that must not be lost: if its
// write fails (the error is returned as by Append), the Log keeps it and
// writes it ahead of the next batch — retrying every second on its own —
// until it is durable or the Log closes. Change uses it for retractions.
// A retained event keeps the time it was first submitted, so it may be
// stored after events with slightly later times.
func (l *Log) RecordRetained(ctx context.Context, e airlock.Event) (int64, error) {
	r := l.submitRetained(e)
	return r.Wait(ctx)
}

// Owed returns how many retained events wait to be written again.
func (l *Log) Owed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.owed)
}

// Append validates e, stamps it with the server time, and returns its Seq
// once it is durable. Errors: EINVALID/ETOOLARGE for a bad event (nothing
// stored), EUNAVAILABLE when the store write failed or the log is closed,
// or ctx's error (the event may then still become durable).
func (l *Log) Append(ctx context.Context, e airlock.Event) (int64, error) {
	return l.submit(e, true).Wait(ctx)
}

// Submit validates and enqueues e without waiting for it to be durable; the
// Receipt reports the outcome. It blocks only while the queue is full
// (MaxQueue). Validation errors complete the receipt at once.
//
// Action must be dotted lower case ("grant.created"); Outcome one of
// success, failure, denied; Details empty or a JSON object (it is stored
// compacted). Strings are stored with invalid UTF-8 and NUL replaced by
// U+FFFD. e.Time, Seq, PrevHash and Hash are ignored: the log assigns them.
//
// With Options.MaxDelay the event may wait up to MaxDelay before its
// commit starts; call Flush when something waits for the receipt.
func (l *Log) Submit(e airlock.Event) *Receipt { return l.submit(e, false) }

// Pipeline returns l as the root package's airlock.AuditPipeline: Submit
// and Flush, with each receipt an airlock.AuditPending (a *Receipt).
func (l *Log) Pipeline() airlock.AuditPipeline { return pipeline{l} }

// pipeline is Log.Pipeline: Go has no covariant results, so *Log, whose
// Submit returns the concrete *Receipt, needs this adapter to be one.
type pipeline struct{ l *Log }

func (p pipeline) Submit(e airlock.Event) airlock.AuditPending { return p.l.Submit(e) }
func (p pipeline) Flush()                                      { p.l.Flush() }

var _ airlock.AuditPending = (*Receipt)(nil)

// Flush asks the writer to commit everything queued now instead of after
// Options.MaxDelay. It does not wait; the receipts report completion.
func (l *Log) Flush() {
	l.mu.Lock()
	kick := len(l.queue) > 0 && !l.urgent
	if kick {
		l.urgent = true
	}
	l.mu.Unlock()
	if kick {
		l.kick()
	}
}

func (l *Log) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Log) submit(e airlock.Event, urgent bool) *Receipt {
	return l.enqueue(e, urgent, false)
}

func (l *Log) submitRetained(e airlock.Event) *Receipt { return l.enqueue(e, true, true) }

func (l *Log) enqueue(e airlock.Event, urgent, retain bool) *Receipt {
	e, err := prepare(e)
	if err != nil {
		return failed(err)
	}
	r := &Receipt{ev: e, retain: retain}
	l.mu.Lock()
	for len(l.queue) >= l.opts.MaxQueue && !l.closing {
		l.space.Wait()
	}
	if l.closing {
		l.mu.Unlock()
		return failed(airlock.WrapError(airlock.EUNAVAILABLE, "audit log is closed", ErrClosed))
	}
	// The clock is read under the queue lock so that times are in chain
	// order within one process.
	r.ev.Time = eventTime(l.opts.Now())
	if l.open == nil || l.openN == l.opts.MaxBatch {
		l.open, l.openN = &commit{done: make(chan struct{})}, 0
	}
	r.c = l.open
	l.openN++
	l.queue = append(l.queue, r)
	n := len(l.queue)
	// Without MaxDelay every event wakes the writer. With it, only the
	// first (to start the delay), a half-full batch, or urgency do.
	kick := l.opts.MaxDelay <= 0 || n == 1 || n == l.opts.MaxBatch/2 || (urgent && !l.urgent)
	if n == 1 {
		l.firstAt = time.Now()
	}
	if urgent {
		l.urgent = true
	}
	l.mu.Unlock()
	if kick {
		l.kick()
	}
	return r
}

// Healthy returns nil when the last store write succeeded, else an
// EUNAVAILABLE error; callers refuse their action while it is unhealthy.
// After Close it reports ErrClosed.
func (l *Log) Healthy() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return airlock.WrapError(airlock.EUNAVAILABLE, "audit log is closed", ErrClosed)
	}
	return l.health
}

// Probe, while the log is unhealthy, tries a write to find out whether it
// may be healthy again: it appends an audit.recovered event (actor system)
// recording since when writes had failed and how many, which makes the
// log healthy again once durable. Writability is proven by the very
// operation that failed — a store that answers reads but cannot write (a
// full disk) stays unhealthy. Nothing needs to write for the log to
// recover: call Probe periodically (the server's readiness check does,
// every second). It returns Healthy() afterwards; a healthy log is not
// written to.
func (l *Log) Probe(ctx context.Context) error {
	l.mu.Lock()
	health, since, n := l.health, l.downSince, l.downWrites
	l.mu.Unlock()
	if health == nil {
		return l.Healthy()
	}
	// One probe event at a time: a probe that timed out waits on, rather
	// than piling up events for a store that hangs.
	l.probeMu.Lock()
	r := l.probe
	if r == nil || r.done() {
		r = l.submit(airlock.Event{Actor: airlock.SystemActor, Action: "audit.recovered", Outcome: airlock.OutcomeSuccess,
			Details: airlock.EventDetails("unavailable_since", since.UTC(), "failed_writes", n)}, true)
		l.probe = r
	}
	l.probeMu.Unlock()
	if _, err := r.Wait(ctx); err != nil {
		return err
	}
	return l.Healthy()
}

// Close stops accepting events, writes everything queued, writes a final
// checkpoint if events were written since the last one, stops the writer,
// and lets the witnesses take the last checkpoint. If ctx ends first it
// returns ctx's error and abandons the rest.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.space.Broadcast()
	l.mu.Unlock()
	l.kick()
	select {
	case <-l.stopped:
		l.cancel()
	case <-ctx.Done():
		l.cancel()
		<-l.stopped
		l.closeWitnesses(ctx)
		return ctx.Err()
	}
	return l.closeWitnesses(ctx)
}

// closeWitnesses lets each witness take the final checkpoint, until ctx
// ends.
func (l *Log) closeWitnesses(ctx context.Context) error {
	defer l.wcancel()
	l.wstop.Do(func() {
		for _, r := range l.witnesses {
			close(r.stop)
		}
	})
	for _, r := range l.witnesses {
		select {
		case <-r.done:
		case <-ctx.Done():
			// Cancelled, a witness returns soon; one stuck where a context
			// cannot reach (a file write on a hung mount) is left behind
			// rather than holding the shutdown past its deadline.
			l.wcancel()
			return ctx.Err()
		}
	}
	return nil
}

// take removes the receipts of the oldest commit (at most MaxBatch) from
// the queue; urgent reports whether someone was waiting for them (Append,
// Flush). A batch is exactly one commit's receipts: the commit that is
// still open is closed to new receipts when taken.
func (l *Log) take() (batch []*Receipt, closing, urgent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.queue)
	if n == 0 {
		return nil, l.closing, false
	}
	urgent = l.urgent
	c := l.queue[0].c
	k := 1
	for k < n && l.queue[k].c == c {
		k++
	}
	if c == l.open {
		l.open, l.openN = nil, 0
	}
	if k == n {
		batch = l.queue
		l.queue = l.spare[:0]
		l.spare = nil
	} else {
		batch = append(l.spare[:0], l.queue[:k]...)
		l.spare = nil
		rest := copy(l.queue, l.queue[k:])
		clear(l.queue[rest:])
		l.queue = l.queue[:rest]
	}
	if len(l.queue) == 0 {
		l.urgent = false
	}
	l.space.Broadcast()
	return batch, l.closing, urgent
}

// recycle hands a finished batch slice back for reuse.
func (l *Log) recycle(batch []*Receipt) {
	clear(batch)
	l.mu.Lock()
	if l.spare == nil && cap(batch) <= 4*l.opts.MaxBatch {
		l.spare = batch[:0]
	}
	l.mu.Unlock()
}

// Adaptive gathering (Options.Linger == 0): how long the writer waits for
// the next event while the queue is below the last batch's size, and for
// all of them together.
const (
	gatherGap = 100 * time.Microsecond
	gatherMax = time.Millisecond
)

// gather waits while the queue is smaller than target and events keep
// arriving, so that writers released by the last commit join the next one
// instead of each starting a commit of its own.
func (l *Log) gather(target int) {
	if target <= 1 {
		return
	}
	deadline := time.Now().Add(gatherMax)
	for {
		l.mu.Lock()
		n, closing := len(l.queue), l.closing
		l.mu.Unlock()
		if n >= target || closing {
			return
		}
		wait := min(gatherGap, time.Until(deadline))
		if wait <= 0 {
			return
		}
		l.gatherT.Reset(wait)
		select {
		case <-l.wake:
			l.gatherT.Stop()
		case <-l.gatherT.C:
			// Nothing new within the gap: the writers are not coming
			// back soon. The wake this may leave pending is harmless.
			return
		case <-l.ctx.Done():
			l.gatherT.Stop()
			return
		}
	}
}

// delay waits, with Options.MaxDelay, until the queue is due: nobody
// waits for it yet, it is below half a batch, and its oldest event has
// waited less than MaxDelay. It reports whether the queue is urgent, and
// empty when there was nothing queued: the writer then waits for a kick
// instead of taking an event that arrives meanwhile without its delay.
func (l *Log) delay() (urgent, empty bool) {
	for {
		l.mu.Lock()
		n, urgent, closing, first := len(l.queue), l.urgent, l.closing, l.firstAt
		l.mu.Unlock()
		if n == 0 {
			return false, !closing
		}
		if urgent || closing || n >= l.opts.MaxBatch/2 {
			return urgent, false
		}
		wait := time.Until(first.Add(l.opts.MaxDelay))
		if wait <= 0 {
			return false, false
		}
		l.gatherT.Reset(wait)
		select {
		case <-l.wake:
			l.gatherT.Stop()
		case <-l.gatherT.C:
			return false, false
		case <-l.ctx.Done():
			l.gatherT.Stop()
			return false, false
		}
	}
}

func (l *Log) run() {
	defer close(l.stopped)
	ticker := time.NewTicker(l.opts.CheckpointInterval)
	defer ticker.Stop()
	l.gatherT = time.NewTimer(time.Hour)
	l.gatherT.Stop()
	last := 0       // size of the last batch written
	lastUrgent := 0 // size of the last batch someone waited for
	for {
		empty := false
		if l.opts.MaxDelay > 0 {
			var urgent bool
			urgent, empty = l.delay()
			// Someone waits: gather the writers a commit released, as
			// without MaxDelay, but only for a batch of urgent size.
			if urgent && l.opts.Linger <= 0 {
				l.gather(lastUrgent)
			}
		} else if l.opts.Linger <= 0 {
			l.gather(last)
		} else {
			// Let a small queue grow for a moment: fewer, larger commits
			// cost far less CPU per event than many tiny ones.
			l.mu.Lock()
			n := len(l.queue)
			l.mu.Unlock()
			if n > 0 && n < l.opts.MaxBatch/2 {
				time.Sleep(l.opts.Linger)
			}
		}
		var batch []*Receipt
		var closing, urgent bool
		if !empty { // else wait for the kick of the next event
			batch, closing, urgent = l.take()
		}
		last = len(batch)
		if urgent {
			lastUrgent = len(batch)
		}
		if len(batch) > 0 {
			l.write(batch)
			l.recycle(batch)
			if l.sinceCP >= l.opts.CheckpointEvery {
				l.writeCheckpoint()
			}
			continue
		}
		if closing || l.ctx.Err() != nil {
			if l.Owed() > 0 {
				l.write(nil)
				if n := l.Owed(); n > 0 {
					l.log.Error("audit: closing with retained events (retractions) that could not be written", "events", n)
				}
			}
			if l.sinceCP > 0 {
				l.writeCheckpoint()
			}
			return
		}
		var retry *time.Timer
		var retryC <-chan time.Time
		if l.Owed() > 0 {
			retry = time.NewTimer(retainRetry)
			retryC = retry.C
		}
		select {
		case <-l.wake:
		case <-retryC:
			l.write(nil)
		case <-ticker.C:
			if l.sinceCP > 0 {
				l.writeCheckpoint()
			}
		case <-l.ctx.Done():
		}
		if retry != nil {
			retry.Stop()
		}
	}
}

// buildBatch assigns Seq, PrevHash and Hash to the current batch starting
// from head. The store calls it under its write lock, possibly more than
// once (on retry), so it recomputes everything each time.
func (l *Log) buildBatch(head airlock.AuditHead) ([]airlock.Event, error) {
	events := l.events[:0]
	seq, prev := head.Seq, head.Hash
	link := func(e airlock.Event) { // e continues the chain
		seq++
		e.Seq = seq
		e.PrevHash = prev
		e.Hash = l.h.hexHash(&e)
		prev = e.Hash
		events = append(events, e)
	}
	for _, e := range l.curOwed {
		link(e)
	}
	for _, r := range l.cur {
		link(r.ev)
	}
	l.events = events
	return events, nil
}

// write stores the owed events and then batch (which may be empty) in one
// store transaction.
func (l *Log) write(batch []*Receipt) {
	l.mu.Lock()
	owed := l.owed[:len(l.owed):len(l.owed)]
	l.mu.Unlock()
	if len(batch) == 0 && len(owed) == 0 {
		return
	}
	l.cur, l.curOwed = batch, owed
	start := time.Now()
	err := l.store.AppendEvents(l.ctx, l.build)
	l.m.latency.Observe(time.Since(start).Seconds())
	l.cur, l.curOwed = nil, nil
	if err == nil && len(l.events) != len(owed)+len(batch) {
		err = errors.New("audit: store did not call build")
	}
	if err != nil {
		l.m.failures.Inc()
		l.log.Error("audit: write failed; refusing audited actions until a write succeeds",
			"events", len(owed)+len(batch), "err", err)
		werr := airlock.WrapError(airlock.EUNAVAILABLE, "audit log cannot be written", err)
		l.mu.Lock()
		l.health = werr
		if l.downWrites == 0 {
			l.downSince = l.opts.Now()
		}
		l.downWrites++
		for _, r := range batch {
			if r.retain {
				l.owed = append(l.owed, r.ev)
			}
		}
		l.mu.Unlock()
		if len(batch) > 0 {
			c := batch[0].c
			c.err = werr
			close(c.done)
		}
		clear(l.events)
		l.events = l.events[:0]
		return
	}
	l.mu.Lock()
	l.health = nil
	l.downWrites = 0
	l.owed = append([]airlock.Event(nil), l.owed[len(owed):]...)
	l.mu.Unlock()
	for i, r := range batch {
		r.seq = l.events[len(owed)+i].Seq
	}
	if len(batch) > 0 {
		close(batch[0].c.done)
	}
	last := l.events[len(l.events)-1]
	l.lastSeq, l.lastHash = last.Seq, last.Hash
	l.sinceCP += len(l.events)
	l.m.appended.Add(float64(len(l.events)))
	l.m.batchSize.Observe(float64(len(l.events)))
	clear(l.events)
	l.events = l.events[:0]
}

// writeCheckpoint signs and stores the head this Log last wrote: the chain
// head and the Merkle root of the same events (version 2), or the chain
// head alone when the stored tree cannot give that root (a log damaged
// before the tree was built; see sqlstore.BuildTree).
func (l *Log) writeCheckpoint() {
	ctx := l.ctx
	if ctx.Err() != nil {
		// Closing after a timeout: still try briefly to leave a checkpoint.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
	}
	var c airlock.Checkpoint
	root, err := tlog.NewCachedReader(func(id tlog.TileID) ([]byte, error) { return l.store.MerkleTile(ctx, id.Level, id.Index) }, &l.fullTiles).Root(uint64(l.lastSeq))
	if err != nil {
		l.log.Error("audit: the Merkle tree has no root for the checkpoint; writing a chain-only checkpoint", "seq", l.lastSeq, "err", err)
		c = SignCheckpoint(l.opts.Signer, l.opts.KeyID, l.lastSeq, l.lastHash, l.opts.Now())
	} else {
		c = SignTreeCheckpoint(l.opts.Signer, l.opts.KeyID, l.lastSeq, l.lastHash, hex.EncodeToString(root), l.opts.Now())
	}
	if err := l.store.AddCheckpoint(ctx, &c); err != nil {
		// A write that failed late (its context canceled while the store
		// committed it) leaves the row behind, and the retry at shutdown
		// then conflicts on (seq, key_id). That checkpoint is already
		// stored: count it as written if the stored one names the same hash.
		if airlock.ErrorCode(err) != airlock.ECONFLICT || !l.checkpointStored(ctx, c) {
			l.m.failures.Inc()
			l.log.Error("audit: checkpoint write failed", "seq", c.Seq, "err", err)
			return
		}
	}
	l.m.checkpoints.Inc()
	l.sinceCP = 0
	l.checkpoint = c.Seq
	for _, r := range l.witnesses {
		r.offer(c)
	}
}

// checkpointStored reports whether the store holds a checkpoint by this
// Log's key at c.Seq naming c.Hash. It reads every checkpoint, which is
// only done after a conflict.
func (l *Log) checkpointStored(ctx context.Context, c airlock.Checkpoint) bool {
	cps, err := l.store.ListCheckpoints(ctx)
	if err != nil {
		return false
	}
	for _, s := range cps {
		if s.Seq == c.Seq && s.KeyID == c.KeyID && s.Hash == c.Hash {
			return true
		}
	}
	return false
}
