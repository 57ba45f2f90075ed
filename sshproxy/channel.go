package sshproxy

import (
	"context"
	"fmt"
	"sync"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/recording"
	"golang.org/x/crypto/ssh"
)

// sessionChannel is one "session" channel (shell, exec or subsystem)
// relayed between the client and the target.
type sessionChannel struct {
	s    *session
	down ssh.Channel
	up   ssh.Channel

	// Set by the request goroutine before started is closed; read by the
	// copy goroutines after.
	pty        *ptyRequest
	kind       string // "shell", "exec" or "subsystem"
	command    string
	rec        *recording.Writer
	inInspect  func([]byte) error
	outInspect func([]byte) error
	started    chan struct{}
	startOnce  sync.Once

	mu         sync.Mutex // guards pty and rec for notify, and the exit fields
	exitStatus *uint32
	exitSignal string
}

func (c *sessionChannel) start() { c.startOnce.Do(func() { close(c.started) }) }

// notify writes msg to the user's terminal (stderr without a pty).
func (c *sessionChannel) notify(msg string) {
	c.mu.Lock()
	rec, pty := c.rec, c.pty
	c.mu.Unlock()
	if rec != nil {
		rec.Output([]byte(msg))
	}
	if pty != nil {
		c.down.Write([]byte(msg))
		return
	}
	c.down.Stderr().Write([]byte(msg))
}

func (s *session) handleSessionChannel(ctx context.Context, nch ssh.NewChannel) {
	up, upReqs, err := s.up.OpenChannel("session", nch.ExtraData())
	if err != nil {
		if oce, ok := err.(*ssh.OpenChannelError); ok {
			nch.Reject(oce.Reason, oce.Message)
		} else {
			nch.Reject(ssh.ConnectionFailed, "airlock: target unavailable")
		}
		return
	}
	down, downReqs, err := nch.Accept()
	if err != nil {
		up.Close()
		return
	}
	c := &sessionChannel{s: s, down: down, up: up, started: make(chan struct{})}
	s.mu.Lock()
	s.channels[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.channels, c)
		s.mu.Unlock()
	}()

	reqsDone := make(chan struct{})
	go func() {
		defer close(reqsDone)
		c.clientRequests(ctx, downReqs)
		c.start()
		up.Close()
	}()
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		c.serverRequests(upReqs)
	}()

	// Data flows only once the shell/exec/subsystem request has been
	// handled, so inspectors and the recording see every byte.
	select {
	case <-c.started:
	case <-s.closed:
		<-reqsDone
		return
	}
	var outWG sync.WaitGroup
	outWG.Add(2)
	go func() {
		if err := s.copyInspect(up, down, &s.bytesIn, c.inInspect); err != nil {
			s.terminate(airlock.EndAuditUnavailable, false)
		}
		up.CloseWrite()
	}()
	go func() {
		defer outWG.Done()
		if err := s.copyInspect(down, up, &s.bytesOut, c.outInspect); err != nil {
			s.terminate(airlock.EndAuditUnavailable, false)
		}
	}()
	go func() {
		defer outWG.Done()
		s.copyInspect(down.Stderr(), up.Stderr(), &s.bytesOut, nil)
	}()
	outWG.Wait()
	<-upDone // exit-status has been forwarded
	if c.kind == "exec" {
		c.mu.Lock()
		details := map[string]any{"command": c.command, "exit_status": nil}
		if c.exitStatus != nil {
			details["exit_status"] = *c.exitStatus
		}
		if c.exitSignal != "" {
			details["exit_signal"] = c.exitSignal
		}
		c.mu.Unlock()
		s.audit(ctx, "ssh.exec", details)
	}
	down.CloseWrite()
	down.Close()
	<-reqsDone
}

// serverRequests forwards the target's channel requests (exit-status,
// exit-signal, eow@openssh.com) to the client.
func (c *sessionChannel) serverRequests(reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "exit-status":
			if v, err := parseExitStatus(req.Payload); err == nil {
				c.mu.Lock()
				c.exitStatus = &v
				c.mu.Unlock()
			}
		case "exit-signal":
			if v, err := parseExitSignal(req.Payload); err == nil {
				c.mu.Lock()
				c.exitSignal = v
				c.mu.Unlock()
			}
		}
		ok, err := c.down.SendRequest(req.Type, req.WantReply, req.Payload)
		if req.WantReply {
			req.Reply(ok && err == nil, nil)
		}
	}
}

func (c *sessionChannel) forward(req *ssh.Request) bool {
	ok, err := c.up.SendRequest(req.Type, req.WantReply, req.Payload)
	ok = ok && err == nil
	if req.WantReply {
		req.Reply(ok, nil)
	}
	return ok
}

// clientRequests applies policy to the client's channel requests and
// forwards the allowed ones.
func (c *sessionChannel) clientRequests(ctx context.Context, reqs <-chan *ssh.Request) {
	s := c.s
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			p, err := parsePtyReq(req.Payload)
			if err != nil || c.kind != "" {
				req.Reply(false, nil)
				continue
			}
			c.mu.Lock()
			c.pty = &p
			c.mu.Unlock()
			c.forward(req)
		case "window-change":
			cols, rows, err := parseWindowChange(req.Payload)
			if err != nil {
				req.Reply(false, nil)
				continue
			}
			c.mu.Lock()
			rec := c.rec
			c.mu.Unlock()
			if rec != nil {
				rec.Resize(int(cols), int(rows))
			}
			c.forward(req)
		case "env", "signal", "break":
			if _, err := parseRequest(req.Type, req.Payload); err != nil && req.Type != "break" {
				req.Reply(false, nil)
				continue
			}
			c.forward(req)
		case "auth-agent-req@openssh.com":
			if !s.target.AllowAgentForward {
				s.log.Info("agent forwarding refused")
				req.Reply(false, nil)
				continue
			}
			c.forward(req)
		case "shell", "exec", "subsystem":
			if c.kind != "" {
				req.Reply(false, nil)
				continue
			}
			if err := c.prepare(ctx, req); err != nil {
				req.Reply(false, nil)
				c.down.Stderr().Write([]byte("airlock: " + err.Error() + "\r\n"))
				c.start()
				continue
			}
			c.forward(req)
			c.start()
		default: // x11-req and anything unknown
			s.log.Info("channel request refused", "type", printable(req.Type))
			req.Reply(false, nil)
		}
	}
}

// prepare audits a shell, exec or subsystem request before it is
// forwarded and sets up recording and transfer inspection for it.
func (c *sessionChannel) prepare(ctx context.Context, req *ssh.Request) error {
	s := c.s
	if _, err := parseRequest(req.Type, req.Payload); err != nil {
		return fmt.Errorf("malformed %s request", req.Type)
	}
	var ins, outs []func([]byte) error
	transfer := false // an scp exec: its files are audited one by one, not recorded
	onFile := func(t Transfer) error {
		return s.audit(ctx, "ssh.file_transfer", map[string]any{"protocol": t.Protocol, "direction": t.Direction, "path": t.Path, "size": t.Size})
	}
	switch req.Type {
	case "shell":
		c.kind = "shell"
		d := map[string]any{"pty": c.pty != nil}
		if c.pty != nil {
			d["term"] = c.pty.Term
		}
		if err := s.audit(ctx, "ssh.shell", d); err != nil {
			return fmt.Errorf("audit log unavailable")
		}
	case "exec":
		cmd, _ := parseSingleString(req.Payload)
		c.kind, c.command = "exec", printable(cmd)
		s.execs.Add(1)
		if err := s.audit(ctx, "ssh.exec.start", map[string]any{"command": c.command, "pty": c.pty != nil}); err != nil {
			return fmt.Errorf("audit log unavailable")
		}
		if dir, target, recursive, ok := scpCommand(cmd); ok {
			transfer = true
			p := &scpParser{direction: dir, target: target, recursive: recursive, onFile: onFile}
			if dir == "upload" {
				ins = append(ins, func(b []byte) error { _, err := p.Write(b); return err })
			} else {
				outs = append(outs, func(b []byte) error { _, err := p.Write(b); return err })
			}
		}
	case "subsystem":
		name, _ := parseSingleString(req.Payload)
		c.kind = "subsystem"
		if name != "sftp" {
			s.auditOutcome(ctx, "ssh.subsystem", "denied", map[string]any{"name": printable(name)})
			return fmt.Errorf("subsystem %q is not allowed", printable(name))
		}
		if err := s.audit(ctx, "ssh.subsystem", map[string]any{"name": name}); err != nil {
			return fmt.Errorf("audit log unavailable")
		}
		tr := newSFTPTracker(onFile, func(op SFTPOp) error {
			d := map[string]any{"op": op.Op, "path": op.Path}
			if op.NewPath != "" {
				d["new_path"] = op.NewPath
			}
			return s.audit(ctx, "ssh.sftp", d)
		})
		ins = append(ins, func(b []byte) error { _, err := tr.ClientWriter().Write(b); return err })
		outs = append(outs, func(b []byte) error { _, err := tr.ServerWriter().Write(b); return err })
	}
	// With recording on, every shell and every exec is recorded, with a
	// pty or without: `ssh -T host sh` is as interactive as a shell. Only
	// file transfers (scp, the sftp subsystem) are not: each file is its
	// own ssh.file_transfer event.
	recorded := c.kind == "shell" || c.pty != nil || (c.kind == "exec" && !transfer)
	if s.target.Record && recorded {
		var term string
		var cols, rows uint32 = 80, 24
		if c.pty != nil {
			term, cols, rows = c.pty.Term, c.pty.Cols, c.pty.Rows
		}
		rec, err := s.recorder(ctx, term, cols, rows)
		if err != nil {
			s.log.Error("recording unavailable: refusing session", "err", err)
			return fmt.Errorf("session recording is required on %s and is unavailable", s.target.Resource)
		}
		c.mu.Lock()
		c.rec = rec
		c.mu.Unlock()
		outs = append(outs, rec.Output)
		if s.target.RecordInput {
			ins = append(ins, rec.Input)
		}
	}
	c.inInspect, c.outInspect = chain(ins), chain(outs)
	return nil
}

func chain(fs []func([]byte) error) func([]byte) error {
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	}
	return func(b []byte) error {
		for _, f := range fs {
			if err := f(b); err != nil {
				return err
			}
		}
		return nil
	}
}
