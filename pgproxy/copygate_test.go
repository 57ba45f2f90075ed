package pgproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The copy gate (requests.go): in copy-in mode the server answers
// nothing it reads, so the gateway must know, before it forwards a
// message, whether the server reads it in copy-in mode. These tests drive
// the server through the states a client can put it in and check that
// each request still gets its own responses afterwards.

// untilCopyIn reads up to the CopyInResponse.
func (r *rawConn) untilCopyIn() string {
	r.t.Helper()
	var b strings.Builder
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("no CopyInResponse: %v\n%s", err, b.String())
		}
		fmt.Fprintf(&b, "%T\n", m)
		if _, ok := m.(*pgproto3.CopyInResponse); ok {
			return b.String()
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			r.t.Fatalf("error before copy-in: %s %s\n%s", e.Code, e.Message, b.String())
		}
	}
}

// afterCopy checks that the session answers a statement with its own
// rows and one ReadyForQuery, in both protocols.
func afterCopy(t *testing.T, r *rawConn, want string) {
	t.Helper()
	out := r.send(1, q("SELECT string_agg(name, ',' ORDER BY id) FROM items WHERE id >= 90"))
	row := fmt.Sprintf("D %q", want)
	if want == "" {
		row = "D NULL" // no rows copied
	}
	if !strings.Contains(out, row) || strings.Count(out, "Z") != 1 {
		t.Errorf("simple query after the copy: want %q:\n%s", want, out)
	}
	out = r.send(1, &pgproto3.Parse{Query: "SELECT 7 AS seven"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !strings.Contains(out, `D "7"`) || strings.Count(out, "Z") != 1 || strings.Contains(out, "E ") {
		t.Errorf("extended query after the copy:\n%s", out)
	}
}

// libpq's PQexecParams of a COPY: Parse, Bind, Describe, Execute, Sync
// at once (the server ignores that Sync), then the data, CopyDone and a
// second Sync.
func TestCopyGateExtendedLikeLibpq(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	r.fe.Send(&pgproto3.Parse{Query: "COPY items (id, name) FROM STDIN"})
	r.fe.Send(&pgproto3.Bind{})
	r.fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	r.fe.Send(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Sync{})
	r.flush()
	r.untilCopyIn()
	out := r.send(1, &pgproto3.CopyData{Data: []byte("90\tninety\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	if !strings.Contains(out, "C COPY 1") || strings.Count(out, "Z") != 1 {
		t.Fatalf("copy: %s", out)
	}
	afterCopy(t, r, "ninety")
}

// A row the server rejects ends copy-in mode with an error: the Syncs the
// client sent before are ignored, the one after CopyDone is answered.
func TestCopyGateExtendedRowFails(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	r.fe.Send(&pgproto3.Parse{Query: "COPY items (id, name) FROM STDIN"})
	r.fe.Send(&pgproto3.Bind{})
	r.fe.Send(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Sync{})
	r.flush()
	r.untilCopyIn()
	out := r.send(1, &pgproto3.CopyData{Data: []byte("not-a-number\tx\n")}, &pgproto3.Sync{},
		&pgproto3.CopyDone{}, &pgproto3.Sync{})
	if !strings.Contains(out, "E ERROR 22P02") || strings.Count(out, "Z") != 1 {
		t.Fatalf("copy: %s", out)
	}
	afterCopy(t, r, "")
}

// A client that sends its data without waiting for CopyInResponse: the
// gateway waits for the server to ask before it forwards the data.
func TestCopyGatePipelined(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	out := r.send(1, q("COPY items (id, name) FROM STDIN"), &pgproto3.Sync{},
		&pgproto3.CopyData{Data: []byte("91\tpipelined\n")}, &pgproto3.CopyDone{})
	if !strings.Contains(out, "C COPY 1") || strings.Count(out, "Z") != 1 {
		t.Fatalf("copy: %s", out)
	}
	afterCopy(t, r, "pipelined")
}

// Two copies in one query string, each with a Sync in its data.
func TestCopyGateTwoCopiesInOneQuery(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	out := r.send(1, q("COPY items (id, name) FROM STDIN; COPY items (id, name) FROM STDIN"),
		&pgproto3.CopyData{Data: []byte("92\tone\n")}, &pgproto3.Sync{}, &pgproto3.CopyDone{},
		&pgproto3.CopyData{Data: []byte("93\ttwo\n")}, &pgproto3.Sync{}, &pgproto3.CopyDone{})
	if strings.Count(out, "C COPY 1") != 2 || strings.Count(out, "Z") != 1 {
		t.Fatalf("copies: %s", out)
	}
	afterCopy(t, r, "one,two")
}

// A COPY that fails before copy-in (no such table): the Sync after it is
// answered, the data after that is ignored by the server.
func TestCopyGateFailsBeforeCopyIn(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	out := r.send(1, &pgproto3.Parse{Query: "COPY no_such_table FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !strings.Contains(out, "E ERROR") || strings.Count(out, "Z") != 1 {
		t.Fatalf("copy: %s", out)
	}
	r.fe.Send(&pgproto3.CopyData{Data: []byte("94\tx\n")})
	r.fe.Send(&pgproto3.CopyDone{})
	afterCopy(t, r, "")
}

// Any other message in copy-in mode would end the copy with an error and
// be lost: the gateway ends the session instead, with a clear error.
func TestCopyGateOtherMessageEndsSession(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	r.fe.Send(q("COPY items (id, name) FROM STDIN"))
	r.flush()
	r.untilCopyIn()
	out := r.send(1, &pgproto3.Parse{Query: "SELECT 1"})
	if !strings.Contains(out, "E FATAL 08P01") || !strings.Contains(out, "during COPY FROM STDIN") {
		t.Fatalf("want the session ended: %s", out)
	}
}

func TestMayCopyIn(t *testing.T) {
	for text, want := range map[string]bool{
		"COPY t FROM STDIN":              true,
		"copy t from stdin":              true,
		"COPY t FROM sTdIn (FORMAT csv)": true,
		"COPY t TO STDOUT":               false,
		"SELECT 1":                       false,
		"std":                            false,
		"":                               false,
	} {
		if got := mayCopyIn([]byte(text)); got != want {
			t.Errorf("mayCopyIn(%q) = %v", text, got)
		}
	}
}
