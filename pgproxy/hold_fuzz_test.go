package pgproxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/policy"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// recordingUpstream is a trust-auth fake PostgreSQL server that records
// every statement it would run (a Query's text, an Execute's statement
// text) and answers like a server: an error for the gateway's replacement
// text or portal, skipping to Sync in the extended protocol. For the fuzz
// target only; everything end to end runs against real PostgreSQL.
type recordingUpstream struct {
	mu  sync.Mutex
	ran []string
}

func (u *recordingUpstream) record(s string) {
	u.mu.Lock()
	u.ran = append(u.ran, s)
	u.mu.Unlock()
}

func (u *recordingUpstream) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	stmts, portals := map[string]string{}, map[string]string{}
	skipping := false
	fail := func() {
		be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "refused"})
		skipping = true
	}
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *pgproto3.Query:
			if m.String == deniedText {
				be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax"})
			} else {
				u.record(m.String)
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("OK")})
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Parse:
			if skipping {
				continue
			}
			if m.Query == deniedText {
				fail()
				continue
			}
			stmts[m.Name] = m.Query
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			if skipping {
				continue
			}
			portals[m.DestinationPortal] = stmts[m.PreparedStatement]
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			if skipping {
				continue
			}
			if m.ObjectType == 'S' {
				be.Send(&pgproto3.ParameterDescription{})
			}
			be.Send(&pgproto3.NoData{})
		case *pgproto3.Execute:
			if skipping {
				continue
			}
			text, ok := portals[m.Portal]
			if !ok {
				fail()
				continue
			}
			u.record(text)
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("OK")})
		case *pgproto3.Close:
			if skipping {
				continue
			}
			if m.ObjectType == 'P' {
				delete(portals, m.Name)
			} else {
				delete(stmts, m.Name)
			}
			be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			skipping = false
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		}
		if be.Flush() != nil {
			return
		}
	}
}

// scriptHolder decides holds from a script of bytes (approve, deny,
// time out) and counts the approvals it gave per statement.
type scriptHolder struct {
	mu       sync.Mutex
	script   []byte
	approved map[string]int
}

func (h *scriptHolder) Hold(ctx context.Context, r HoldRequest, notice func(string)) HoldResult {
	notice("held")
	h.mu.Lock()
	defer h.mu.Unlock()
	b := byte(0)
	if len(h.script) > 0 {
		b, h.script = h.script[0], h.script[1:]
	}
	switch b % 3 {
	case 0:
		h.approved[r.Statement]++
		return HoldResult{Outcome: HoldApproved}
	case 1:
		return HoldResult{Outcome: HoldDenied}
	}
	return HoldResult{Outcome: HoldTimeout}
}

// FuzzHolds drives a session with held statements through simple and
// extended protocol, sequential and pipelined, with the holder's answers
// chosen by the fuzzer (on_unknown: allow, so that nothing is refused for
// being unknown), and checks the invariants: the server runs a held
// statement only as often as it was approved; every statement gets its
// own answer, in order (a refusal is 42501, an approval or a statement
// that is not held runs); the session stays usable.
func FuzzHolds(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, []byte{0, 1, 2, 0})
	f.Add([]byte{6, 6, 7, 1}, []byte{1, 0, 0})
	f.Add([]byte{24, 25, 24}, []byte{1, 1, 0})
	rec := &recordingUpstream{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go rec.serve(c)
		}
	}()
	holder := &scriptHolder{}
	rules := &policy.Statements{OnUnknown: policy.StatementAllow, Rules: []policy.StatementRule{
		{Name: "files", Functions: []string{"pg_read_file"}, Action: policy.StatementDeny},
		{Name: "wipe", Forms: []string{"no_where"}, Action: policy.StatementRequireApproval},
		{Name: "schema", Class: []string{"ddl"}, Action: policy.StatementRequireMFA},
	}}
	g, err := New(Config{
		AllowLoopbackPlaintext: true,
		Auth: AuthenticatorFunc(func(ctx context.Context, req AuthRequest) (*Target, error) {
			return &Target{UserID: "u", UserName: req.User, GrantID: "g", Resource: "r", EndsAt: time.Now().Add(time.Hour),
				UpstreamAddr: ln.Addr().String(), UpstreamDatabase: "db", UpstreamUser: "u", Statements: rules}, nil
		}),
		Audit:  &sink{},
		Holder: holder,
	})
	if err != nil {
		f.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go func() { _ = g.Serve(context.Background(), gl) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	}()
	WarmGuard()

	texts := []string{"SELECT 1", "DELETE FROM t", "CREATE TABLE x (a int)", "DELETE FROM t WHERE id = 1", "SELECT pg_read_file('f')",
		"SELECT 2; UPDATE t SET a = 1", "EXECUTE w"}
	held := map[string]bool{"DELETE FROM t": true, "CREATE TABLE x (a int)": true, "SELECT 2; UPDATE t SET a = 1": true, "EXECUTE w": true}
	f.Fuzz(func(t *testing.T, ops, script []byte) {
		if len(ops) > 12 {
			ops = ops[:12]
		}
		holder.mu.Lock()
		holder.script, holder.approved = script, map[string]int{}
		holder.mu.Unlock()
		rec.mu.Lock()
		rec.ran = nil
		rec.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pc, err := pgconn.Connect(ctx, "postgres://alice:tok@"+gl.Addr().String()+"/r?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(context.Background())
		// A held statement the protocol prepares: an SQL EXECUTE of it is
		// held too.
		if _, err := pc.Prepare(ctx, "w", "DELETE FROM t", nil); err != nil {
			t.Fatal(err)
		}
		// check is one statement's answer: a refusal only for a held or
		// denied statement, with 42501.
		check := func(text string, err error) {
			var pe *pgconn.PgError
			switch {
			case err == nil:
			case errors.As(err, &pe) && pe.Code == "42501" && (held[text] || strings.Contains(text, "pg_read_file")):
			default:
				t.Fatalf("%q: %v", text, err)
			}
		}
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			text := texts[int(op>>2)%len(texts)]
			switch op % 4 {
			case 0: // simple protocol
				_, err := pc.Exec(ctx, text).ReadAll()
				check(text, err)
			case 1, 2: // extended protocol, one statement
				if strings.Contains(text, ";") {
					text = "SELECT 1"
				}
				rr := pc.ExecParams(ctx, text, nil, nil, nil, nil).Read()
				check(text, rr.Err)
			case 3: // a pipeline of this and the next statement
				next := texts[0]
				if i+1 < len(ops) {
					next = texts[int(ops[i+1]>>2)%len(texts)]
					i++
				}
				var batch []string
				for _, s := range []string{text, next} {
					if !strings.Contains(s, ";") {
						batch = append(batch, s)
					}
				}
				p := pc.StartPipeline(ctx)
				for _, s := range batch {
					p.SendQueryParams(s, nil, nil, nil, nil)
				}
				if err := p.Sync(); err != nil {
					t.Fatal(err)
				}
				failed := false
				for _, s := range batch {
					res, err := p.GetResults()
					if err != nil {
						check(s, err)
						failed = true
						break
					}
					rr, ok := res.(*pgconn.ResultReader)
					if !ok {
						t.Fatalf("pipeline result %T", res)
					}
					if _, err := rr.Close(); err != nil {
						check(s, err)
						failed = true
						break
					}
				}
				if failed {
					// The rest of the batch was skipped to Sync.
					for {
						res, err := p.GetResults()
						if _, ok := res.(*pgconn.PipelineSync); ok || err != nil && !errors.As(err, new(*pgconn.PgError)) {
							break
						}
						if rr, ok := res.(*pgconn.ResultReader); ok {
							_, _ = rr.Close()
						}
					}
				} else if res, err := p.GetResults(); err != nil {
					t.Fatal(err)
				} else if _, ok := res.(*pgconn.PipelineSync); !ok {
					t.Fatalf("pipeline: %T before its Sync", res)
				}
				if err := p.Close(); err != nil {
					check("", err)
				}
			}
		}
		// Usable after everything.
		if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatalf("session after the ops: %v", err)
		}
		rec.mu.Lock()
		ran := map[string]int{}
		for _, s := range rec.ran {
			ran[s]++
		}
		rec.mu.Unlock()
		holder.mu.Lock()
		defer holder.mu.Unlock()
		for s, n := range ran {
			if held[s] && n > holder.approved[s] {
				t.Fatalf("%q ran %d times, approved %d", s, n, holder.approved[s])
			}
			if strings.Contains(s, "pg_read_file") {
				t.Fatalf("a denied statement ran: %q", s)
			}
		}
	})
}
