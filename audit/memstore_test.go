package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// memStore is an in-memory airlock.AuditStore for unit tests of this
// package's logic; the real stores are tested in store_test.go.
type memStore struct {
	mu     sync.Mutex
	events []airlock.Event
	cps    []airlock.Checkpoint
	tiles  map[tlog.TileID][]byte // the Merkle tree (runs joined), grown by AppendEvents
	fail   error                  // when set, AppendEvents and AddCheckpoint fail with it
	// onAppend, when set, runs inside AppendEvents after build (tests).
	onAppend func()
}

func (m *memStore) setFail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

func (m *memStore) AppendEvents(ctx context.Context, build func(airlock.AuditHead) ([]airlock.Event, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	head := m.head()
	evs, err := build(head)
	if err != nil {
		return err
	}
	if m.fail != nil {
		return m.fail
	}
	if m.onAppend != nil {
		m.onAppend()
	}
	for i, e := range evs {
		if e.Seq != head.Seq+int64(i)+1 {
			return fmt.Errorf("memstore: seq %d out of order", e.Seq)
		}
	}
	if m.tiles == nil {
		m.tiles = map[tlog.TileID][]byte{}
	}
	leaves := make([][tlog.HashSize]byte, len(evs))
	for i := range evs {
		leaves[i] = tlog.EventLeaf(evs[i].Hash)
	}
	tiles, err := tlog.Append(head.Seq, leaves, func(id tlog.TileID) ([]byte, error) { return m.tiles[id], nil })
	if err != nil {
		return err
	}
	for _, t := range tiles {
		if t.Whole {
			m.tiles[t.TileID] = t.Hashes
		} else {
			m.tiles[t.TileID] = append(m.tiles[t.TileID][:t.Start*tlog.HashSize:t.Start*tlog.HashSize], t.Hashes...)
		}
	}
	m.events = append(m.events, evs...)
	return nil
}

func (m *memStore) TreeCheckpoint(ctx context.Context, seq int64) (airlock.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.cps) - 1; i >= 0; i-- {
		if c := m.cps[i]; c.Root != "" && (seq == 0 || c.Seq == seq) {
			return c, nil
		}
	}
	return airlock.Checkpoint{}, airlock.Errorf(airlock.ENOTFOUND, "no signed tree head")
}

func (m *memStore) MerkleTile(ctx context.Context, level int, index int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.tiles[tlog.TileID{Level: level, Index: index}]...), nil
}

func (m *memStore) head() airlock.AuditHead {
	if len(m.events) == 0 {
		return airlock.AuditHead{}
	}
	e := m.events[len(m.events)-1]
	return airlock.AuditHead{Seq: e.Seq, Hash: e.Hash}
}

func (m *memStore) AuditHead(ctx context.Context) (airlock.AuditHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head(), nil
}

func (m *memStore) ListEvents(ctx context.Context, f airlock.EventFilter) ([]airlock.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []airlock.Event
	for _, e := range m.events {
		if e.Seq <= f.AfterSeq || (!f.Since.IsZero() && e.Time.Before(f.Since)) || (!f.Until.IsZero() && e.Time.After(f.Until)) {
			continue
		}
		if f.Action != "" {
			if p, ok := strings.CutSuffix(f.Action, "*"); ok && !strings.HasPrefix(e.Action, p) || !ok && e.Action != f.Action {
				continue
			}
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// ScanEvents streams in order of position in the slice, like a store
// ordered by its primary key (tests may store tampered seqs).
func (m *memStore) ScanEvents(ctx context.Context, afterSeq int64, fn func(airlock.Event) error) error {
	m.mu.Lock()
	evs := m.events
	m.mu.Unlock()
	for _, e := range evs {
		if e.Seq <= afterSeq {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) AddCheckpoint(ctx context.Context, c *airlock.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.cps = append(m.cps, *c)
	return nil
}

func (m *memStore) ListCheckpoints(ctx context.Context) ([]airlock.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]airlock.Checkpoint(nil), m.cps...), nil
}

// stepClock is a deterministic clock advancing by step on every call.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newStepClock() *stepClock {
	return &stepClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), step: 1500 * time.Nanosecond}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}
