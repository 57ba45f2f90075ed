package pgprovision

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool sizes: a few connections per resource, closed after a short idle
// time, so that a rotated or removed credential's login does not linger.
const (
	PoolMaxConns    = 4
	PoolIdleTimeout = 2 * time.Minute
	PoolMaxLifetime = 30 * time.Minute
)

// Pools keeps the provisioning connections to each resource's own
// database (issue 18: a new connection per Create was most of what
// activation cost), one small pgxpool per resource and credential. The
// zero value is ready to use; its methods are safe for concurrent use.
type Pools struct {
	mu     sync.Mutex
	m      map[string]map[[32]byte]*pgxpool.Pool // resource -> fingerprint -> pool
	closed bool
}

// fingerprint identifies a connection config: where it goes and as whom,
// password included (hashed, never kept as a key in the clear), with the
// caller's settings (TLS and the like) in extra.
func fingerprint(cfg *pgx.ConnConfig, extra string) [32]byte {
	h := sha256.New()
	for _, s := range []string{cfg.Host, strconv.Itoa(int(cfg.Port)), cfg.Database, cfg.User, cfg.Password, cfg.RequireAuth, extra} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Acquirer returns a Provisioner.Acquire lending connections made with
// cfg from resource's pool for that config (made on first use; cfg must
// come from pgx.ParseConfig). extra names whatever else the connection
// depends on (TLS settings). When only is set, cfg is resource's one valid
// credential: pools of resource made with any other are closed, so that a
// rotated password's sessions end with the rotation.
func (ps *Pools) Acquirer(resource string, cfg *pgx.ConnConfig, extra string, only bool) func(context.Context) (*pgx.Conn, func(), error) {
	k := fingerprint(cfg, extra)
	return func(ctx context.Context) (*pgx.Conn, func(), error) {
		p, err := ps.pool(resource, k, cfg, only)
		if err != nil {
			return nil, nil, err
		}
		c, err := p.Acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		return c.Conn(), c.Release, nil
	}
}

var errPoolsClosed = errors.New("pgprovision: provisioning connections closed")

func (ps *Pools) pool(resource string, k [32]byte, cfg *pgx.ConnConfig, only bool) (*pgxpool.Pool, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, errPoolsClosed
	}
	if ps.m == nil {
		ps.m = map[string]map[[32]byte]*pgxpool.Pool{}
	}
	byKey := ps.m[resource]
	if only {
		for ok, p := range byKey {
			if ok != k {
				delete(byKey, ok)
				go p.Close() // waits for connections on loan; their holders finish first
			}
		}
	}
	if p := byKey[k]; p != nil {
		return p, nil
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pc.ConnConfig = cfg.Copy()
	pc.MaxConns = PoolMaxConns
	pc.MinConns = 0
	pc.MaxConnIdleTime = PoolIdleTimeout
	pc.MaxConnLifetime = PoolMaxLifetime
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, err
	}
	if byKey == nil {
		byKey = map[[32]byte]*pgxpool.Pool{}
		ps.m[resource] = byKey
	}
	byKey[k] = p
	return p, nil
}

// Forget closes resource's pools: after a rotation of its provisioning
// credential and when it is removed. Connections on loan close when
// returned.
func (ps *Pools) Forget(resource string) {
	ps.mu.Lock()
	byKey := ps.m[resource]
	delete(ps.m, resource)
	ps.mu.Unlock()
	for _, p := range byKey {
		go p.Close()
	}
}

// Close closes every pool and refuses new ones.
func (ps *Pools) Close() {
	ps.mu.Lock()
	m := ps.m
	ps.m, ps.closed = nil, true
	ps.mu.Unlock()
	for _, byKey := range m {
		for _, p := range byKey {
			p.Close()
		}
	}
}
