package pgproxy

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Upstream reuse. Starting a PostgreSQL backend costs milliseconds of CPU
// (fork, catalog caches, exit), more than everything else a new gateway
// session does. Like pgbouncer in session mode, the gateway keeps the
// upstream connection of a session whose client said goodbye (Terminate)
// while the backend was idle, resets it with DISCARD ALL, and hands it to
// the next session that would log in with exactly the same upstream
// login: address, brokered user and password, database, startup
// parameters (read-only mode, application_name, client_encoding, …) and,
// for a TLS upstream, its TLS settings (Target.UpstreamTLSKey).
// Whatever a client changed in its session — settings, roles, prepared
// statements, temporary tables, LISTEN, advisory locks — DISCARD ALL
// undoes; a backend left in a transaction, a COPY, a half-read reply or
// after any error or kill is closed instead.

// poolKey identifies an upstream login: a SHA-256 over its inputs.
type poolKey [sha256.Size]byte

// upstreamPool holds idle, reset upstream connections by login.
type upstreamPool struct {
	maxPer   int           // per login
	maxAddr  int           // per upstream server, all logins together
	timeout  time.Duration // idle
	lifetime time.Duration // since the login

	mu     sync.Mutex
	idle   map[poolKey][]pooledConn
	byAddr map[string]int
	count  int
	closed bool
	reaper *time.Timer
}

type pooledConn struct {
	up    *upstream
	since time.Time
}

// upstreamsPerServer is how many logins' worth of kept connections one
// upstream server may hold: kept backends occupy its connection slots.
const upstreamsPerServer = 4

func newUpstreamPool(maxPer int, timeout, lifetime time.Duration) *upstreamPool {
	return &upstreamPool{maxPer: maxPer, maxAddr: upstreamsPerServer * maxPer, timeout: timeout, lifetime: lifetime,
		idle: map[poolKey][]pooledConn{}, byAddr: map[string]int{}}
}

// fresh reports whether a kept connection may still be handed out.
func (p *upstreamPool) fresh(pc pooledConn, now time.Time) bool {
	return now.Sub(pc.since) < p.timeout && now.Sub(pc.up.dialed) < p.lifetime
}

// removeLocked accounts for a connection leaving the pool.
func (p *upstreamPool) removeLocked(up *upstream) {
	p.count--
	if p.byAddr[up.addr]--; p.byAddr[up.addr] <= 0 {
		delete(p.byAddr, up.addr)
	}
}

// loginKey returns the pool key of an upstream login: address, role,
// password, TLS settings (Target.UpstreamTLSKey) and startup parameters.
func loginKey(addr, user, password, tlsKey string, params map[string]string) poolKey {
	h := sha256.New()
	field := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(addr)
	field(user)
	field(password)
	field(tlsKey)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(params[k])
	}
	var k poolKey
	h.Sum(k[:0])
	return k
}

// get returns an idle connection for key, most recently used first,
// closing the ones that expired or whose backend went away meanwhile.
func (p *upstreamPool) get(key poolKey) *upstream {
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := list[len(list)-1]
		list[len(list)-1] = pooledConn{}
		if len(list) == 1 {
			delete(p.idle, key)
		} else {
			p.idle[key] = list[:len(list)-1]
		}
		p.removeLocked(pc.up)
		p.mu.Unlock()
		if p.fresh(pc, time.Now()) && quiet(pc.up.conn) {
			return pc.up
		}
		pc.up.conn.Close()
	}
}

// put keeps up for reuse, or closes it when its login or its server has
// as many kept as allowed, it has lived its lifetime, or the pool is
// closed.
func (p *upstreamPool) put(up *upstream) {
	now := time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle[up.key]) >= p.maxPer || p.byAddr[up.addr] >= p.maxAddr || now.Sub(up.dialed) >= p.lifetime {
		p.mu.Unlock()
		up.conn.Close()
		return
	}
	p.idle[up.key] = append(p.idle[up.key], pooledConn{up: up, since: now})
	p.count++
	p.byAddr[up.addr]++
	if p.reaper == nil {
		p.reaper = time.AfterFunc(p.timeout, p.reap)
	}
	p.mu.Unlock()
}

// reap closes connections idle for longer than the timeout and re-arms
// itself while any are left.
func (p *upstreamPool) reap() {
	p.mu.Lock()
	now := time.Now()
	stale := p.removeWhereLocked(func(pc pooledConn) bool { return !p.fresh(pc, now) })
	p.reaper = nil
	if p.count > 0 && !p.closed {
		p.reaper = time.AfterFunc(p.timeout/2, p.reap)
	}
	p.mu.Unlock()
	for _, up := range stale {
		up.conn.Close()
	}
}

// removeWhereLocked takes the kept connections for which drop reports
// true out of the pool and returns them.
func (p *upstreamPool) removeWhereLocked(drop func(pooledConn) bool) []*upstream {
	var gone []*upstream
	for key, list := range p.idle {
		keep := list[:0]
		for _, pc := range list {
			if drop(pc) {
				gone = append(gone, pc.up)
				continue
			}
			keep = append(keep, pc)
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = keep
		}
	}
	for _, up := range gone {
		p.removeLocked(up)
	}
	return gone
}

// drain closes every kept connection to addr and returns how many.
func (p *upstreamPool) drain(addr string) int {
	p.mu.Lock()
	gone := p.removeWhereLocked(func(pc pooledConn) bool { return pc.up.addr == addr })
	p.mu.Unlock()
	// A backend gives its slot back when it exits, after it has closed its
	// end: say goodbye and wait (briefly) for that close, so that a login
	// retried right after finds the slots free.
	var wg sync.WaitGroup
	for _, up := range gone {
		wg.Go(func() {
			defer up.conn.Close()
			_ = up.conn.SetDeadline(time.Now().Add(drainWait))
			if _, err := up.conn.Write(terminateMsg); err == nil {
				_, _ = io.Copy(io.Discard, up.r)
			}
		})
	}
	wg.Wait()
	return len(gone)
}

// drainWait bounds how long drain waits for a backend to go.
const drainWait = 2 * time.Second

// idleCount returns how many connections wait for reuse.
func (p *upstreamPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// close closes every idle connection and refuses new ones.
func (p *upstreamPool) close() {
	p.mu.Lock()
	p.closed = true
	gone := p.removeWhereLocked(func(pooledConn) bool { return true })
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
	p.mu.Unlock()
	for _, up := range gone {
		up.conn.Close()
	}
}

// maxResetReply bounds one message of the reply to DISCARD ALL.
const maxResetReply = 1 << 20

var errReset = errors.New("pgproxy: upstream reset failed")

// reset runs DISCARD ALL on an idle upstream connection and reads the
// reply up to ReadyForQuery, applying ParameterStatus changes (settings
// return to their startup values). Any error, notice of failure or a
// status other than idle means the connection must not be reused.
func reset(up *upstream, timeout time.Duration) error {
	if err := up.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	q, _ := (&pgproto3.Query{String: "DISCARD ALL"}).Encode(nil)
	if _, err := up.conn.Write(q); err != nil {
		return err
	}
	done := false
	for {
		typ, body, err := readTyped(up.r, maxResetReply)
		if err != nil {
			return err
		}
		switch typ {
		case 'C':
			tag, _, _ := cstring(body)
			done = string(tag) == "DISCARD ALL"
		case 'S':
			k, rest, ok := cstring(body)
			v, _, ok2 := cstring(rest)
			if !ok || !ok2 {
				return errProtocol
			}
			up.params[string(k)] = string(v)
		case 'N', 'A':
			// A notice or a notification that was already on its way.
		case 'Z':
			if !done || len(body) != 1 || body[0] != 'I' || up.r.Buffered() > 0 {
				return errReset
			}
			up.txStatus = 'I'
			return up.conn.SetDeadline(time.Time{})
		default: // 'E' and anything unexpected
			return errReset
		}
	}
}
