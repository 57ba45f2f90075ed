package sshproxy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/gwsession"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/sshca"
	"golang.org/x/crypto/ssh"
)

// session is one authenticated client connection relayed to one target.
type session struct {
	g      *Gateway
	id     string
	target Target
	source string
	start  time.Time
	log    *slog.Logger

	down ssh.Conn // client side
	up   ssh.Conn // target side

	bytesIn, bytesOut atomic.Int64
	lastActive        atomic.Int64 // unix nanos of the last data
	execs             atomic.Int64

	mu        sync.Mutex
	channels  map[*sessionChannel]struct{}
	rec       *recording.Writer
	recErr    error
	ended     bool
	endReason airlock.EndReason
	timers    []*time.Timer

	closeOnce sync.Once
	closed    chan struct{}
}

// authState carries what the auth callbacks learn into serveConn.
type authState struct {
	target  *Target
	up      ssh.Conn
	upChans <-chan ssh.NewChannel
	upReqs  <-chan *ssh.Request
	upCert  *ssh.Certificate
	id      string
	release func() // gives back the MaxConcurrent slot; nil until taken
}

// releaseSlot gives back the connection's MaxConcurrent slot, if it holds one.
func (st *authState) releaseSlot() {
	if st.release != nil {
		st.release()
	}
}

func (g *Gateway) serverConfig(ctx context.Context, st *authState, source string) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		MaxAuthTries:  6,
		ServerVersion: "SSH-2.0-Airlock",
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			cert, err := g.cfg.CA.CheckUserCert(key, "", g.cfg.MaxUserCertLifetime)
			if err != nil {
				return nil, err
			}
			if len(cert.ValidPrincipals) != 1 {
				return nil, errors.New("sshproxy: user certificate must name exactly one principal")
			}
			grant := cert.Extensions[sshca.ExtGrant]
			if grant == "" {
				return nil, errors.New("sshproxy: user certificate is not bound to a grant")
			}
			return &ssh.Permissions{Extensions: map[string]string{
				"user":   cert.ValidPrincipals[0],
				"grant":  grant,
				"login":  cert.Extensions[sshca.ExtLogin],
				"keyid":  cert.KeyId,
				"serial": strconv.FormatUint(cert.Serial, 10),
			}}, nil
		},
		VerifiedPublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
			if st.target != nil {
				return nil, errors.New("sshproxy: already authenticated")
			}
			if err := g.authorize(ctx, st, meta, perms, source); err != nil {
				return nil, &ssh.BannerError{Err: err, Message: "airlock: " + airlock.ErrorMessage(err) + "\r\n"}
			}
			return perms, nil
		},
	}
	cfg.AddHostKey(g.cfg.HostSigner)
	return cfg
}

// authorize asks the Authorizer and connects to the target; on success st
// holds the target and the upstream connection.
func (g *Gateway) authorize(ctx context.Context, st *authState, meta ssh.ConnMetadata, perms *ssh.Permissions, source string) error {
	ext := perms.Extensions
	login, resource, err := ParseUsername(meta.User(), ext["login"])
	if err != nil {
		return err
	}
	serial, _ := strconv.ParseUint(ext["serial"], 10, 64)
	req := AuthRequest{
		UserName: ext["user"], GrantID: ext["grant"], Resource: resource, Login: login,
		SourceAddr: source, CertKeyID: ext["keyid"], CertSerial: serial,
	}
	actx, cancel := context.WithTimeout(ctx, g.cfg.DialTimeout)
	defer cancel()
	t, err := g.cfg.Auth.Authorize(actx, req)
	if err == nil && t == nil {
		err = airlock.Errorf(airlock.EINTERNAL, "authorizer returned no target")
	}
	if err == nil {
		err = checkTarget(t, req, g.cfg.Now())
	}
	if err != nil {
		g.log.Info("ssh access denied", "user", req.UserName, "resource", resource, "login", login, "grant", req.GrantID, "source", source, "err", err)
		g.auditDenied(ctx, req, err, nil)
		return err
	}
	release, ok := g.sessions.Reserve(t.UserID, t.GrantID, t.MaxConcurrent)
	if !ok {
		msg := fmt.Sprintf("too many concurrent sessions under this grant (limit %d); close one and retry", t.MaxConcurrent)
		err := airlock.Errorf(airlock.EFORBIDDEN, "%s", msg)
		g.log.Info("ssh access denied: too many concurrent sessions", "user", req.UserName, "resource", resource, "grant", req.GrantID, "source", source, "limit", t.MaxConcurrent)
		g.auditDenied(ctx, req, err, map[string]any{"reason": "max_concurrent", "message": msg, "limit": t.MaxConcurrent})
		return err
	}
	st.id = airlock.NewID("ses")
	up, chans, reqs, cert, err := g.dialTarget(actx, t, st.id)
	if err != nil {
		release()
		g.log.Warn("ssh target unreachable", "resource", t.Resource, "addr", t.Addr, "session", st.id, "err", err)
		uerr := airlock.WrapError(airlock.EUNAVAILABLE, fmt.Sprintf("cannot log in to %s as %s: the target refused or is unreachable (does it trust the Airlock user CA? see docs/ssh.md)", t.Resource, t.Login), err)
		g.auditDenied(ctx, req, uerr, nil)
		return uerr
	}
	st.target, st.up, st.upChans, st.upReqs, st.upCert, st.release = t, up, chans, reqs, cert, release
	return nil
}

// checkTarget fails closed on an Authorizer result that does not match
// the request or has no future deadline.
func checkTarget(t *Target, req AuthRequest, now time.Time) error {
	switch {
	case t.GrantID != req.GrantID:
		return airlock.Errorf(airlock.EFORBIDDEN, "your SSH certificate is for another grant: run `airlock ssh %s` again", req.Resource)
	case t.Login == "":
		return airlock.Errorf(airlock.EINVALID, "no login given: use LOGIN@%s as the SSH user", req.Resource)
	case t.Addr == "":
		return airlock.Errorf(airlock.EINTERNAL, "resource %s has no address", req.Resource)
	case t.EndsAt.IsZero() || !now.Before(t.EndsAt):
		return airlock.Errorf(airlock.EFORBIDDEN, "your grant for %s has ended: run `airlock request %s` for new access", req.Resource, req.Resource)
	}
	return nil
}

// auditDenied records session.denied; extra overrides or adds details
// (max_concurrent: a machine-readable reason, as pgproxy records it).
func (g *Gateway) auditDenied(ctx context.Context, req AuthRequest, cause error, extra map[string]any) {
	d := map[string]any{"kind": airlock.KindSSH, "login": req.Login, "code": airlock.ErrorCode(cause), "reason": airlock.ErrorMessage(cause)}
	for k, v := range extra {
		d[k] = v
	}
	ev := airlock.Event{
		Actor: airlock.Actor{Name: req.UserName}, Action: "session.denied", Resource: req.Resource,
		GrantID: req.GrantID, SourceAddr: req.SourceAddr, Outcome: airlock.OutcomeDenied,
		Details: mustJSON(d),
	}
	if _, err := g.cfg.Audit.Record(ctx, ev); err != nil {
		g.log.Error("audit session.denied", "err", err)
	}
}

// dialTarget connects to t.Addr as t.Login with a fresh key and a
// certificate for exactly that login.
func (g *Gateway) dialTarget(ctx context.Context, t *Target, sessionID string) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, *ssh.Certificate, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keyID := fmt.Sprintf("airlock session=%s user=%s grant=%s", sessionID, t.UserName, t.GrantID)
	cert, err := g.cfg.CA.SignUserCert(signer.PublicKey(), []string{t.Login}, keyID, g.cfg.UpstreamCertLifetime,
		map[string]string{sshca.ExtSession: sessionID, sshca.ExtGrant: t.GrantID})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sign upstream certificate: %w", err)
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	hostCB := g.cfg.CA.HostKeyCallback()
	if t.HostKey != nil {
		pinned := t.HostKey.Marshal()
		hostCB = func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if string(key.Marshal()) != string(pinned) {
				return fmt.Errorf("host key of %s does not match the pinned key", t.Addr)
			}
			return nil
		}
	} else if t.HostName != "" {
		cb := hostCB
		hostCB = func(_ string, remote net.Addr, key ssh.PublicKey) error {
			return cb(net.JoinHostPort(t.HostName, "22"), remote, key)
		}
	}
	nc, err := g.cfg.Dial(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("dial %s: %w", t.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	ccfg := &ssh.ClientConfig{
		User:            t.Login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback: hostCB,
		ClientVersion:   "SSH-2.0-Airlock",
	}
	if t.HostKey != nil {
		// Ask for exactly the pinned key's algorithm(s).
		switch t.HostKey.Type() {
		case ssh.KeyAlgoRSA:
			ccfg.HostKeyAlgorithms = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		default:
			ccfg.HostKeyAlgorithms = []string{t.HostKey.Type()}
		}
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, t.Addr, ccfg)
	if err != nil {
		nc.Close()
		return nil, nil, nil, nil, err
	}
	nc.SetDeadline(time.Time{})
	return conn, chans, reqs, cert, nil
}

func (g *Gateway) serveConn(ctx context.Context, nc net.Conn, authenticated func()) {
	source := nc.RemoteAddr().String()
	st := &authState{}
	nc.SetDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
	down, chans, reqs, err := ssh.NewServerConn(nc, g.serverConfig(ctx, st, source))
	authenticated() // a session now (or over): free the pending slot
	defer st.releaseSlot()
	if err != nil {
		nc.Close()
		if st.up != nil {
			st.up.Close()
		}
		g.log.Debug("ssh handshake failed", "source", source, "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	t := st.target
	s := &session{
		g: g, id: st.id, target: *t, source: source, start: g.cfg.Now(),
		down: down, up: st.up, channels: map[*sessionChannel]struct{}{},
		closed: make(chan struct{}),
	}
	s.log = g.log.With("session", s.id, "user", t.UserName, "resource", t.Resource, "login", t.Login)
	s.touch()
	defer s.finish(ctx)

	details := map[string]any{
		"kind": airlock.KindSSH, "login": t.Login, "addr": t.Addr, "ends_at": t.EndsAt.UTC(),
		"upstream_cert": map[string]any{
			"key_id": st.upCert.KeyId, "serial": strconv.FormatUint(st.upCert.Serial, 10),
			"valid_after":  time.Unix(int64(st.upCert.ValidAfter), 0).UTC(),
			"valid_before": time.Unix(int64(st.upCert.ValidBefore), 0).UTC(),
		},
	}
	if err := s.audit(ctx, "session.started", details); err != nil {
		s.setEndReason(airlock.EndAuditUnavailable)
		return
	}
	if g.cfg.Sessions != nil {
		snap := s.snapshot()
		if err := g.cfg.Sessions.CreateSession(ctx, &snap); err != nil {
			s.log.Error("create session", "err", err)
			s.setEndReason(airlock.EndAuditUnavailable)
			return
		}
	}
	live := &gwsession.Session{
		ID: s.id, UserID: t.UserID, GrantID: t.GrantID, Resource: t.Resource, Node: g.cfg.Node,
		StartedAt: s.start, EndsAt: t.EndsAt,
		Close: func(r airlock.EndReason) { s.terminate(r, true) },
		Info:  s.snapshot,
	}
	if !g.sessions.Add(live) {
		s.setEndReason(airlock.EndServerShutdown)
		return
	}
	defer func() {
		st.releaseSlot() // before Remove: once not listed, the slot is free
		g.sessions.Remove(live)
	}()
	s.log.Info("ssh session started", "source", source)

	// Deadline: the grant's ends_at, measured on the injected clock.
	s.addTimer(t.EndsAt.Sub(g.cfg.Now()), func() { s.terminate(airlock.EndGrantExpired, true) })
	if t.IdleTimeout > 0 {
		s.armIdle(t.IdleTimeout)
	}

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.handleGlobalRequests(reqs) }()
	go func() { defer wg.Done(); s.handleUpstreamGlobal(st.upReqs) }()
	go func() { defer wg.Done(); s.handleUpstreamChannels(st.upChans) }()
	go func() {
		st.up.Wait()
		s.terminate(airlock.EndUpstreamClosed, false)
	}()
	for nch := range chans {
		wg.Add(1)
		go func() { defer wg.Done(); s.handleChannel(ctx, nch) }()
	}
	s.terminate(airlock.EndClientClosed, false)
	wg.Wait()
}

func (s *session) touch() { s.lastActive.Store(s.g.cfg.Now().UnixNano()) }

func (s *session) addTimer(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.timers = append(s.timers, time.AfterFunc(max(d, 0), f))
}

func (s *session) armIdle(idle time.Duration) {
	var check func()
	check = func() {
		since := s.g.cfg.Now().Sub(time.Unix(0, s.lastActive.Load()))
		if since >= idle {
			s.terminate(airlock.EndIdleTimeout, true)
			return
		}
		s.addTimer(idle-since, check)
	}
	s.addTimer(idle, check)
}

// terminate ends the session for reason (the first reason given is the
// one recorded): with notify, "airlock: <reason> — session closed" is
// written to every interactive channel; then both connections are closed.
// It returns once the connections are closed (within cfg.NoticeTimeout
// plus the close).
func (s *session) terminate(reason airlock.EndReason, notify bool) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		if s.endReason == "" {
			s.endReason = reason
		}
		chs := make([]*sessionChannel, 0, len(s.channels))
		for c := range s.channels {
			chs = append(chs, c)
		}
		s.mu.Unlock()
		if notify {
			msg := "\r\nairlock: " + reason.Text() + " — session closed\r\n"
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, c := range chs {
					c.notify(msg)
				}
			}()
			select {
			case <-done:
			case <-time.After(s.g.cfg.NoticeTimeout):
			}
		}
		s.down.Close()
		if s.up != nil {
			s.up.Close()
		}
		close(s.closed)
		s.log.Info("ssh session closing", "reason", reason)
	})
}

// setEndReason records why the session ends, unless a reason is set already.
func (s *session) setEndReason(reason airlock.EndReason) {
	s.mu.Lock()
	if s.endReason == "" {
		s.endReason = reason
	}
	s.mu.Unlock()
}

// finish records the end of the session once everything has stopped.
func (s *session) finish(ctx context.Context) {
	s.terminate(airlock.EndClientClosed, false)
	s.mu.Lock()
	s.ended = true
	for _, t := range s.timers {
		t.Stop()
	}
	rec := s.rec
	endReason := s.endReason
	s.mu.Unlock()
	details := map[string]any{"end_reason": endReason, "bytes_in": s.bytesIn.Load(), "bytes_out": s.bytesOut.Load(), "execs": s.execs.Load()}
	snap := s.snapshot()
	snap.EndedAt = s.g.cfg.Now()
	if rec != nil {
		if err := rec.Close(); err != nil {
			s.log.Error("close recording", "err", err)
			details["recording_error"] = "recording incomplete"
		}
		snap.Recording = s.id
		snap.RecordingSHA256 = rec.SHA256()
		details["recording"] = s.id
		details["recording_sha256"] = snap.RecordingSHA256
	}
	// The context of the server may be gone at shutdown; the end of a
	// session must still be recorded.
	ctx = context.WithoutCancel(ctx)
	if err := s.audit(ctx, "session.ended", details); err != nil {
		s.log.Error("audit session.ended", "err", err)
	}
	if s.g.cfg.Sessions != nil {
		if err := s.g.cfg.Sessions.EndSession(ctx, &snap); err != nil {
			s.log.Error("end session", "err", err)
		}
	}
	s.log.Info("ssh session ended", "reason", endReason, "bytes_in", snap.BytesIn, "bytes_out", snap.BytesOut)
}

func (s *session) snapshot() airlock.Session {
	s.mu.Lock()
	reason := s.endReason
	s.mu.Unlock()
	return airlock.Session{
		ID: s.id, GrantID: s.target.GrantID, UserID: s.target.UserID, UserName: s.target.UserName,
		Resource: s.target.Resource, Kind: airlock.KindSSH, Access: s.target.Login,
		SourceAddr: s.source, Node: s.g.cfg.Node, StartedAt: s.start, EndReason: string(reason),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Statements: s.execs.Load(),
	}
}

// audit records an event about this session durably. A failure closes the
// session (audit first, fail closed).
func (s *session) audit(ctx context.Context, action string, details map[string]any) error {
	return s.auditOutcome(ctx, action, airlock.OutcomeSuccess, details)
}

func (s *session) auditOutcome(ctx context.Context, action, outcome string, details map[string]any) error {
	ev := airlock.Event{
		Actor:  airlock.Actor{ID: s.target.UserID, Name: s.target.UserName},
		Action: action, Resource: s.target.Resource, GrantID: s.target.GrantID,
		SessionID: s.id, SourceAddr: s.source, Outcome: outcome, Details: mustJSON(details),
	}
	if _, err := s.g.cfg.Audit.Record(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit failed: closing session", "action", action, "err", err)
		go s.terminate(airlock.EndAuditUnavailable, true)
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// recorder returns the session's recording, creating it on first use with
// the terminal size of the first interactive channel.
func (s *session) recorder(ctx context.Context, term string, cols, rows uint32) (*recording.Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec != nil || s.recErr != nil {
		return s.rec, s.recErr
	}
	if s.g.cfg.Recordings == nil {
		s.recErr = errors.New("no recording store configured")
		return nil, s.recErr
	}
	wc, err := s.g.cfg.Recordings.Create(ctx, s.id)
	if err != nil {
		s.recErr = err
		return nil, err
	}
	h := recording.Header{
		Width: int(cols), Height: int(rows), Timestamp: s.g.cfg.Now().Unix(),
		Title: fmt.Sprintf("%s@%s as %s (%s)", s.target.UserName, s.target.Resource, s.target.Login, s.id),
		Env:   map[string]string{"TERM": term, "SHELL": ""},
	}
	if term == "" {
		delete(h.Env, "TERM")
	}
	delete(h.Env, "SHELL")
	w, err := recording.NewWriter(wc, h, s.g.cfg.Now)
	if err != nil {
		wc.Close()
		s.recErr = err
		return nil, err
	}
	s.rec = w
	return w, nil
}

func (s *session) handleGlobalRequests(reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "tcpip-forward", "cancel-tcpip-forward":
			if !s.target.AllowPortForward {
				s.log.Info("remote port forwarding refused")
				req.Reply(false, nil)
				continue
			}
			ok, payload, err := s.up.SendRequest(req.Type, req.WantReply, req.Payload)
			if err != nil {
				ok = false
			}
			req.Reply(ok, payload)
		default:
			// keepalive@openssh.com, no-more-sessions@openssh.com, hostkeys…:
			// answer locally, forward nothing.
			req.Reply(false, nil)
		}
	}
}

func (s *session) handleUpstreamGlobal(reqs <-chan *ssh.Request) {
	for req := range reqs {
		req.Reply(false, nil) // hostkeys-00@openssh.com and keepalives stay here
	}
}

// handleUpstreamChannels relays channels the target opens (remote port
// forwards, agent requests) when the target allows them.
func (s *session) handleUpstreamChannels(chans <-chan ssh.NewChannel) {
	for nch := range chans {
		allowed := nch.ChannelType() == "forwarded-tcpip" && s.target.AllowPortForward ||
			nch.ChannelType() == "auth-agent@openssh.com" && s.target.AllowAgentForward
		if !allowed {
			nch.Reject(ssh.Prohibited, "not allowed by Airlock")
			continue
		}
		go s.pipeChannel(nch, s.down)
	}
}

func (s *session) handleChannel(ctx context.Context, nch ssh.NewChannel) {
	switch nch.ChannelType() {
	case "session":
		s.handleSessionChannel(ctx, nch)
	case "direct-tcpip":
		if !s.target.AllowPortForward {
			nch.Reject(ssh.Prohibited, fmt.Sprintf("airlock: port forwarding is not allowed on %s", s.target.Resource))
			return
		}
		host, port, err := parseDirectTCPIP(nch.ExtraData())
		if err != nil {
			nch.Reject(ssh.ConnectionFailed, "malformed request")
			return
		}
		if s.audit(ctx, "ssh.port_forward", map[string]any{"host": host, "port": port}) != nil {
			nch.Reject(ssh.ConnectionFailed, "airlock: audit log unavailable")
			return
		}
		s.pipeChannel(nch, s.up)
	default:
		nch.Reject(ssh.UnknownChannelType, "airlock: channel type not allowed")
	}
}

// pipeChannel opens the same channel on other and relays data and
// requests both ways until both sides close.
func (s *session) pipeChannel(nch ssh.NewChannel, other ssh.Conn) {
	och, oreqs, err := other.OpenChannel(nch.ChannelType(), nch.ExtraData())
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			nch.Reject(oce.Reason, oce.Message)
		} else {
			nch.Reject(ssh.ConnectionFailed, "airlock: target unavailable")
		}
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		och.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.copyCounted(och, ch, &s.bytesIn); och.CloseWrite() }()
	go func() { defer wg.Done(); s.copyCounted(ch, och, &s.bytesOut); ch.CloseWrite() }()
	go forwardRequests(reqs, och)
	forwardRequests(oreqs, ch)
	wg.Wait()
	ch.Close()
	och.Close()
}

func forwardRequests(reqs <-chan *ssh.Request, to ssh.Channel) {
	for req := range reqs {
		ok, err := to.SendRequest(req.Type, req.WantReply, req.Payload)
		if req.WantReply {
			req.Reply(ok && err == nil, nil)
		}
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyCounted copies src to dst counting bytes and activity.
func (s *session) copyCounted(dst interface{ Write([]byte) (int, error) }, src interface{ Read([]byte) (int, error) }, n *atomic.Int64) error {
	return s.copyInspect(dst, src, n, nil)
}

// copyInspect copies src to dst; every chunk goes through inspect (which
// may veto it) before it is forwarded.
func (s *session) copyInspect(dst interface{ Write([]byte) (int, error) }, src interface{ Read([]byte) (int, error) }, n *atomic.Int64, inspect func([]byte) error) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		k, err := src.Read(buf)
		if k > 0 {
			s.touch()
			n.Add(int64(k))
			if inspect != nil {
				if ierr := inspect(buf[:k]); ierr != nil {
					return ierr
				}
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return nil
		}
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}
