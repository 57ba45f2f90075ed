package pgproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// fakeUpstream is a minimal trust-auth PostgreSQL server: it answers the
// extended and simple protocol with empty results. It is for the fuzz
// target only; everything end to end runs against real PostgreSQL.
func fakeUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serveFake(c) }()
		}
	}()
	return ln.Addr().String()
}

func serveFake(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	be := pgproto3.NewBackend(c, c)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if _, ok := msg.(*pgproto3.StartupMessage); !ok {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *pgproto3.Query:
			if len(m.String) > 0 && m.String[0] == 'E' {
				be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax"})
			} else {
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 0")})
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Parse:
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			// (A server answers every Describe; the gateway matches each
			// response to its request.)
			be.Send(&pgproto3.NoData{})
		case *pgproto3.Close:
			be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Execute:
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY 3")})
		case *pgproto3.Sync:
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		}
		if be.Flush() != nil {
			return
		}
	}
}

// fuzzGateway is a gateway in front of fakeUpstream accepting token "tok".
func fuzzGateway(tb testing.TB) (*Gateway, string) {
	up := fakeUpstream(tb)
	g, err := New(Config{
		AllowLoopbackPlaintext: true,
		Auth: AuthenticatorFunc(func(ctx context.Context, req AuthRequest) (*Target, error) {
			if req.Token.Reveal() != "tok" {
				return nil, errors.New("bad token")
			}
			return &Target{UserID: "u", UserName: req.User, GrantID: "g", Resource: "r", EndsAt: time.Now().Add(time.Hour),
				UpstreamAddr: up, UpstreamDatabase: "db", UpstreamUser: "u", LogParameters: true}, nil
		}),
		Audit:          &sink{},
		MaxMessageSize: 1 << 16,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = g.Serve(context.Background(), ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return g, ln.Addr().String()
}

// startupBytes is a valid startup + password exchange for token "tok".
func login(tb testing.TB, c net.Conn) {
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "r"}})
	if err := fe.Flush(); err != nil {
		tb.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			tb.Fatalf("login: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			fe.Send(&pgproto3.PasswordMessage{Password: "tok"})
			if err := fe.Flush(); err != nil {
				tb.Fatal(err)
			}
		case *pgproto3.ErrorResponse:
			tb.Fatalf("login refused: %s", m.Message)
		case *pgproto3.ReadyForQuery:
			return
		}
	}
}

// FuzzClientMessages feeds arbitrary bytes as a client stream, before or
// after authentication. The session must end cleanly when the client
// stops (no panic, no hang) and the gateway must keep serving.
func FuzzClientMessages(f *testing.F) {
	f.Add(false, []byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"))
	f.Add(true, []byte("Q\x00\x00\x00\x0dSELECT 1\x00X\x00\x00\x00\x04"))
	g, addr := fuzzGateway(f)
	f.Fuzz(func(t *testing.T, afterAuth bool, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if afterAuth {
			login(t, c)
		}
		_, _ = c.Write(data)
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("session did not end cleanly: %v", err)
		}
		// The gateway still serves.
		pc, err := pgconn.Connect(context.Background(), "postgres://alice:tok@"+addr+"/r?sslmode=disable&connect_timeout=10")
		if err != nil {
			t.Fatalf("gateway stopped serving: %v", err)
		}
		if _, err := pc.Exec(context.Background(), "SELECT 1").ReadAll(); err != nil {
			t.Fatalf("gateway relay broken: %v", err)
		}
		pc.Close(context.Background())
		_ = g
	})
}
