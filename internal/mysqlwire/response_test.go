package mysqlwire

import (
	"bytes"
	"errors"
	"testing"
)

// feedAll feeds payloads as packets with sequence ids from seq on and
// returns the steps.
func feedAll(t *testing.T, tr *ResponseTracker, seq uint8, payloads ...[]byte) []Step {
	t.Helper()
	var steps []Step
	for i, p := range payloads {
		s, err := tr.Feed(Header{Length: len(p), Seq: seq + uint8(i)}, p[:min(len(p), PeekSize)])
		if err != nil {
			t.Fatalf("packet %d (%x): %v", i, p, err)
		}
		steps = append(steps, s)
	}
	return steps
}

func eof(status uint16) []byte { return []byte{0xfe, 0, 0, byte(status), byte(status >> 8)} }

func okp(affected uint64, status uint16, hdr byte) []byte {
	p := AppendOK(nil, OK{AffectedRows: affected, Status: status})
	p[0] = hdr
	return p
}

func colDef(name string) []byte {
	var b []byte
	for _, s := range []string{"def", "", "", "", name, ""} {
		b = AppendLenencBytes(b, []byte(s))
	}
	return append(b, 0x0c, 0x21, 0, 0x40, 0, 0, 0, byte(TypeVarString), 0, 0, 0, 0, 0)
}

func textRow(vals ...string) []byte {
	var b []byte
	for _, v := range vals {
		b = AppendLenencBytes(b, []byte(v))
	}
	return b
}

func wantSteps(t *testing.T, got []Step) {
	t.Helper()
	for i, s := range got {
		if want := StepMore; i == len(got)-1 {
			want = StepDone
			if s != want {
				t.Fatalf("last step %d, want done", s)
			}
		} else if s != want {
			t.Fatalf("step %d is %d before the end", i, s)
		}
	}
}

func TestTrackerTextResult(t *testing.T) {
	t.Run("ok/eof", func(t *testing.T) {
		tr := NewResponseTracker(ServerCapabilities &^ CapDeprecateEOF)
		if ok, err := tr.Begin(AppendCommand(nil, ComQuery, "SELECT 1"), 1); !ok || err != nil {
			t.Fatal(ok, err)
		}
		wantSteps(t, feedAll(t, tr, 1, []byte{1}, colDef("1"), eof(2), textRow("1"), textRow("2"), eof(StatusAutocommit)))
		if r := tr.Result(); r.Rows != 2 || r.ResultSets != 1 || r.Err != nil || r.Status != StatusAutocommit || tr.Busy() {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("ok/deprecate-eof", func(t *testing.T) {
		tr := NewResponseTracker(ServerCapabilities)
		tr.Begin([]byte{byte(ComQuery)}, 1)
		wantSteps(t, feedAll(t, tr, 1, []byte{2}, colDef("a"), colDef("b"), textRow("1", "x"), okp(0, 2, 0xfe)))
		if r := tr.Result(); r.Rows != 1 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("ok/multi-results", func(t *testing.T) {
		tr := NewResponseTracker(ServerCapabilities)
		tr.Begin([]byte{byte(ComQuery)}, 1)
		wantSteps(t, feedAll(t, tr, 1,
			[]byte{1}, colDef("a"), textRow("1"), okp(0, StatusMoreResultsExist, 0xfe),
			okp(3, StatusMoreResultsExist, 0),
			[]byte{1}, colDef("b"), textRow("2"), textRow("3"), okp(0, 0, 0xfe)))
		if r := tr.Result(); r.Rows != 3 || r.ResultSets != 2 || r.AffectedRows != 3 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("ok/error-mid-rows", func(t *testing.T) {
		tr := NewResponseTracker(ServerCapabilities)
		tr.Begin([]byte{byte(ComQuery)}, 1)
		e := &ServerError{Code: ErQueryInterrupted, State: "70100", Message: "Query execution was interrupted"}
		wantSteps(t, feedAll(t, tr, 1, []byte{1}, colDef("a"), textRow("1"), e.Append(nil)))
		if r := tr.Result(); r.Err == nil || *r.Err != *e || r.Rows != 1 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("ok/insert", func(t *testing.T) {
		tr := NewResponseTracker(ServerCapabilities)
		tr.Begin([]byte{byte(ComQuery)}, 1)
		wantSteps(t, feedAll(t, tr, 1, okp(5, 2, 0)))
		if tr.Result().AffectedRows != 5 {
			t.Fatal(tr.Result())
		}
	})
	t.Run("ok/huge-row-starting-with-0xfe", func(t *testing.T) {
		// A row whose first value is over 16 MiB starts with 0xFE and
		// spans physical packets; neither part is a terminator.
		tr := NewResponseTracker(ServerCapabilities)
		tr.Begin([]byte{byte(ComQuery)}, 1)
		feedAll(t, tr, 1, []byte{1}, colDef("blob"))
		big := append([]byte{0xfe}, make([]byte, PeekSize)...)
		for i, h := range []Header{{Length: MaxPayload, Seq: 3}, {Length: 5, Seq: 4}} {
			p := big[:min(h.Length, PeekSize)]
			if i == 1 {
				p = eof(0)
			}
			if s, err := tr.Feed(h, p); err != nil || s != StepMore {
				t.Fatalf("part %d: %d %v", i, s, err)
			}
		}
		wantSteps(t, feedAll(t, tr, 5, okp(0, 0, 0xfe)))
		if tr.Result().Rows != 1 {
			t.Fatal(tr.Result())
		}
	})
	t.Run("ok/local-infile-refused", func(t *testing.T) {
		tr := NewResponseTracker(ServerCapabilities)
		tr.Begin(AppendCommand(nil, ComQuery, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"), 1)
		s, err := tr.Feed(Header{Length: 12, Seq: 1}, []byte("\xfb/etc/passwd"))
		if err != nil || s != StepLocalInfile || tr.Result().LocalInfile != "/etc/passwd" {
			t.Fatal(s, err, tr.Result())
		}
		early := *tr
		if _, err := early.Feed(Header{Length: 7, Seq: 3}, okp(0, 0, 0)); err == nil {
			t.Fatal("answer accepted before InfileSent")
		}
		if err := tr.InfileSent(1); err != nil {
			t.Fatal(err)
		}
		wantSteps(t, feedAll(t, tr, 3, (&ServerError{Code: 1148, Message: "x"}).Append(nil)))
	})
}

func TestTrackerPrepare(t *testing.T) {
	prepOK := func(id uint32, cols, params uint16) []byte {
		return []byte{0, byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24), byte(cols), byte(cols >> 8), byte(params), byte(params >> 8), 0, 0, 0}
	}
	for _, tc := range []struct {
		name string
		caps Capability
		pkts [][]byte
	}{
		{"ok/eof", ServerCapabilities &^ CapDeprecateEOF, [][]byte{prepOK(7, 1, 2), colDef("?"), colDef("?"), eof(2), colDef("a"), eof(2)}},
		{"ok/deprecate-eof", ServerCapabilities, [][]byte{prepOK(7, 1, 2), colDef("?"), colDef("?"), colDef("a")}},
		{"ok/no-params", ServerCapabilities &^ CapDeprecateEOF, [][]byte{prepOK(7, 1, 0), colDef("a"), eof(2)}},
		{"ok/nothing", ServerCapabilities &^ CapDeprecateEOF, [][]byte{prepOK(7, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewResponseTracker(tc.caps)
			tr.Begin(AppendCommand(nil, ComStmtPrepare, "SELECT a FROM t WHERE b=? AND c=?"), 1)
			wantSteps(t, feedAll(t, tr, 1, tc.pkts...))
			if r := tr.Result(); r.StmtID != 7 {
				t.Fatalf("%+v", r)
			}
		})
	}
	tr := NewResponseTracker(ServerCapabilities)
	tr.Begin([]byte{byte(ComStmtPrepare)}, 1)
	wantSteps(t, feedAll(t, tr, 1, (&ServerError{Code: 1064, State: "42000", Message: "syntax"}).Append(nil)))
	if tr.Result().Err.Code != 1064 {
		t.Fatal(tr.Result())
	}
}

func TestTrackerBinaryAndSingles(t *testing.T) {
	tr := NewResponseTracker(ServerCapabilities)
	exec := unhex(t, "17 01 00 00 00 00 01 00 00 00 00 01 0f 00 03 66 6f 6f")
	if ok, err := tr.Begin(exec, 1); !ok || err != nil {
		t.Fatal(ok, err)
	}
	wantSteps(t, feedAll(t, tr, 1, []byte{1}, colDef("a"), []byte{0, 0, 1, 'x'}, okp(0, 0, 0xfe)))
	for _, c := range []Command{ComPing, ComInitDB, ComProcessKill, ComStmtReset, ComResetConnection} {
		tr.Begin([]byte{byte(c)}, 1)
		wantSteps(t, feedAll(t, tr, 1, okp(0, 2, 0)))
	}
	tr.Begin([]byte{byte(ComSetOption), 0, 0}, 1)
	wantSteps(t, feedAll(t, tr, 1, eof(2)))
	tr.Begin([]byte{byte(ComStatistics)}, 1)
	wantSteps(t, feedAll(t, tr, 1, []byte("Uptime: 5  Threads: 1")))
	tr.Begin([]byte{byte(ComFieldList), 't', 0}, 1)
	wantSteps(t, feedAll(t, tr, 1, colDef("a"), colDef("b"), eof(2)))
	for _, c := range []Command{ComQuit, ComStmtClose, ComStmtSendLongData} {
		if ok, err := tr.Begin([]byte{byte(c), 0, 0, 0, 0, 0, 0}, 1); ok || err != nil || tr.Busy() {
			t.Fatalf("%s: %v %v", c, ok, err)
		}
	}
}

func TestTrackerRefusals(t *testing.T) {
	tr := NewResponseTracker(ServerCapabilities)
	if _, err := tr.Feed(Header{Length: 7}, okp(0, 0, 0)); !errors.Is(err, ErrNoCommand) {
		t.Errorf("no command: %v", err)
	}
	for _, c := range []Command{ComChangeUser, ComBinlogDump, ComBinlogDumpGTID, ComRegisterSlave, ComStmtBulkExecute, 0xe0} {
		if _, err := tr.Begin([]byte{byte(c)}, 1); !errors.Is(err, ErrUnsupportedCommand) {
			t.Errorf("%s: %v", c, err)
		}
	}
	cursor := unhex(t, "17 01 00 00 00 01 01 00 00 00")
	if _, err := tr.Begin(cursor, 1); !errors.Is(err, ErrCursor) {
		t.Errorf("cursor: %v", err)
	}
	tr.Begin([]byte{byte(ComQuery)}, 1)
	if _, err := tr.Feed(Header{Length: 7, Seq: 2}, okp(0, 0, 0)); !errors.Is(err, ErrSequence) {
		t.Errorf("sequence: %v", err)
	}
	tr.Begin([]byte{byte(ComQuery)}, 1)
	if _, err := tr.Feed(Header{Length: 700, Seq: 1}, bytes.Repeat([]byte{1}, 10)); !errors.Is(err, ErrShortPrefix) {
		t.Errorf("short prefix: %v", err)
	}
	tr.Begin([]byte{byte(ComQuery)}, 1)
	if _, err := tr.Feed(Header{Length: 3, Seq: 1}, []byte{0xfc, 1}); !errors.Is(err, ErrShortPrefix) {
		t.Errorf("short prefix: %v", err)
	}
	tr.Begin([]byte{byte(ComQuery)}, 1)
	if _, err := tr.Feed(Header{Length: 3, Seq: 1}, []byte{0xfc, 1, 0}); err != nil {
		t.Errorf("column count 0xfc: %v", err)
	}
	tr = NewResponseTracker(ServerCapabilities)
	tr.Begin([]byte{byte(ComQuery)}, 1)
	if _, err := tr.Feed(Header{Length: 1, Seq: 1}, []byte{0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated OK: %v", err)
	}
	if tr.Busy() {
		t.Error("busy after a protocol error")
	}
}
