package mysqlwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Step is what a ResponseTracker says after a packet.
type Step int

const (
	// StepMore: the response goes on; relay the packet and feed the next.
	StepMore Step = iota
	// StepDone: the packet ends the command's response; the next
	// command may be sent. Result describes the response.
	StepDone
	// StepLocalInfile: the server asks the client for a file (LOAD DATA
	// LOCAL; Result().LocalInfile is the name). The gateway either
	// refuses — does not relay the packet, sends the upstream one empty
	// packet (seq+1) and the client an ERR — or relays the client's data
	// packets; then it calls InfileSent with the number of packets the
	// upstream got (the empty one included) and feeds the server's answer.
	StepLocalInfile
)

// Errors of the ResponseTracker.
var (
	ErrUnsupportedCommand = errors.New("mysqlwire: command not supported through the gateway")
	ErrCursor             = errors.New("mysqlwire: COM_STMT_EXECUTE with a cursor is not supported through the gateway")
	ErrNoCommand          = errors.New("mysqlwire: server packet with no command under way")
	ErrShortPrefix        = errors.New("mysqlwire: packet prefix shorter than min(length, PeekSize)")
)

type rstate int

const (
	stIdle rstate = iota
	stResult
	stColumns
	stColumnsEOF
	stRows
	stPrepareOK
	stPrepareParams
	stPrepareParamsEOF
	stPrepareCols
	stPrepareColsEOF
	stFieldList
	stSingle
	stAny
	stInfileWait
	stInfileResult
)

// Result describes one command's response as the tracker saw it.
type Result struct {
	Command Command
	// Err is the ERR that ended the response, if any.
	Err *ServerError
	// Rows is the number of rows in all result sets; ResultSets their
	// number; AffectedRows the sum over the OK packets.
	Rows         int64
	ResultSets   int
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16 // of the last OK or EOF
	Warnings     uint16
	// StmtID, NumParams and NumColumns are from a COM_STMT_PREPARE OK.
	StmtID     uint32
	NumParams  uint16
	NumColumns uint16
	// LocalInfile is the file a LOCAL INFILE request named.
	LocalInfile string
}

// ResponseTracker follows the server's response to one command at a
// time, from packet headers and payload prefixes only, so that a gateway
// relaying raw packets knows where a response ends, which error a
// statement got and how many rows it returned — without holding any row.
// It checks sequence ids. Its memory is constant (an ERR message is kept
// up to PeekSize bytes).
//
// Use: Begin with the command packet, then Feed every physical server
// packet (Conn.Next gives both arguments) until StepDone. The zero value
// is not usable; call NewResponseTracker.
type ResponseTracker struct {
	deprecateEOF bool
	st           rstate
	cmd          Command
	binary       bool
	seq          uint8
	cont         bool // the next physical packet continues the current one
	left         int  // column or parameter definitions still to come
	res          Result
}

// NewResponseTracker returns a tracker for a connection with the
// capabilities caps in force (DEPRECATE_EOF changes how results end).
func NewResponseTracker(caps Capability) *ResponseTracker {
	return &ResponseTracker{deprecateEOF: caps.Has(CapDeprecateEOF)}
}

// Busy reports whether a response is under way.
func (t *ResponseTracker) Busy() bool { return t.st != stIdle }

// Result returns what the tracker saw of the current or last response.
func (t *ResponseTracker) Result() Result { return t.res }

// Begin starts following the response to the command whose payload
// starts with cmd (at least its first 10 bytes for COM_STMT_EXECUTE,
// 1 otherwise); seq is the sequence id the first response packet must
// carry (1 after a command sent in one packet). It reports whether a
// response comes at all (COM_QUIT, COM_STMT_CLOSE and
// COM_STMT_SEND_LONG_DATA have none). Commands a gateway must not relay
// — replication, COM_CHANGE_USER, COM_STMT_BULK_EXECUTE, unknown ones —
// return ErrUnsupportedCommand; an execute opening a cursor ErrCursor.
func (t *ResponseTracker) Begin(cmd []byte, seq uint8) (bool, error) {
	if t.st != stIdle {
		return false, errors.New("mysqlwire: Begin while a response is under way")
	}
	if len(cmd) == 0 {
		return false, fmt.Errorf("%w: empty command", ErrMalformed)
	}
	c := Command(cmd[0])
	t.res = Result{Command: c}
	t.seq, t.cont, t.binary, t.cmd = seq, false, false, c
	switch c {
	case ComQuery, ComProcessInfo:
		t.st = stResult
	case ComStmtExecute:
		if len(cmd) < 10 {
			return false, fmt.Errorf("%w: short COM_STMT_EXECUTE", ErrMalformed)
		}
		if cmd[5] != 0 {
			return false, ErrCursor
		}
		t.st, t.binary = stResult, true
	case ComStmtFetch:
		t.st, t.binary = stRows, true
	case ComStmtPrepare:
		t.st = stPrepareOK
	case ComFieldList:
		t.st = stFieldList
	case ComStatistics:
		t.st = stAny
	case ComInitDB, ComPing, ComProcessKill, ComRefresh, ComShutdown, ComDebug, ComSetOption,
		ComStmtReset, ComResetConnection, ComCreateDB, ComDropDB:
		t.st = stSingle
	case ComQuit, ComStmtClose, ComStmtSendLongData:
		return false, nil
	default:
		return false, fmt.Errorf("%w: %s", ErrUnsupportedCommand, c)
	}
	return true, nil
}

// InfileSent tells the tracker, after StepLocalInfile, that the upstream
// got n packets from the client side (the terminating empty packet
// included); the server's answer follows.
func (t *ResponseTracker) InfileSent(n int) error {
	if t.st != stInfileWait || n < 1 {
		return errors.New("mysqlwire: InfileSent without a LOCAL INFILE request")
	}
	t.seq += uint8(n)
	t.st = stInfileResult
	return nil
}

// Feed takes the next physical packet from the server: its header and
// the first min(h.Length, PeekSize) bytes of its payload (more is
// allowed, up to h.Length). It returns what the packet means for the
// response, or an error when the packet breaks the protocol (the
// gateway then closes both sides): out-of-sequence id, a packet where
// none is expected, a malformed OK/ERR/EOF/column count.
//
// After an error the tracker is idle (the connection is not usable).
func (t *ResponseTracker) Feed(h Header, prefix []byte) (Step, error) {
	if t.st == stIdle {
		return 0, ErrNoCommand
	}
	if len(prefix) < min(h.Length, PeekSize) || len(prefix) > h.Length {
		t.st = stIdle
		return 0, ErrShortPrefix
	}
	if t.st == stInfileWait {
		t.st = stIdle
		return 0, errors.New("mysqlwire: server packet before InfileSent")
	}
	if h.Seq != t.seq {
		t.st = stIdle
		return 0, fmt.Errorf("%w: got %d, want %d", ErrSequence, h.Seq, t.seq)
	}
	t.seq++
	if t.cont { // the rest of a split packet: nothing to classify
		t.cont = h.Continued()
		return StepMore, nil
	}
	t.cont = h.Continued()
	step, err := t.packet(h, prefix)
	if err != nil {
		t.st = stIdle
		return 0, err
	}
	if step == StepDone {
		if t.cont {
			t.st = stIdle
			return 0, fmt.Errorf("%w: a response's last packet is split", ErrMalformed)
		}
		t.st = stIdle
	}
	return step, nil
}

func (t *ResponseTracker) packet(h Header, p []byte) (Step, error) {
	var first byte = 0
	if len(p) > 0 {
		first = p[0]
	}
	switch t.st {
	case stResult, stInfileResult:
		switch {
		case len(p) == 0:
			return 0, fmt.Errorf("%w: empty response packet", ErrMalformed)
		case first == 0x00:
			return t.ok(p)
		case first == 0xff:
			return t.err(p)
		case first == 0xfb && t.st == stResult && t.cmd == ComQuery:
			t.res.LocalInfile = string(p[1:])
			t.st = stInfileWait
			return StepLocalInfile, nil
		}
		if t.st == stInfileResult {
			return 0, fmt.Errorf("%w: LOCAL INFILE answer %#x", ErrMalformed, first)
		}
		r := reader{b: p}
		n, null := r.lenenc()
		if r.bad || null || n == 0 || n > 4096 || h.Continued() {
			return 0, fmt.Errorf("%w: column count", ErrMalformed)
		}
		t.res.ResultSets++
		t.left, t.st = int(n), stColumns
		return StepMore, nil
	case stColumns:
		t.left--
		if t.left == 0 {
			if t.deprecateEOF {
				t.st = stRows
			} else {
				t.st = stColumnsEOF
			}
		}
		return StepMore, nil
	case stColumnsEOF:
		if first == 0xff {
			return t.err(p)
		}
		if !t.isEOF(h, p) {
			return 0, fmt.Errorf("%w: no EOF after column definitions", ErrMalformed)
		}
		t.res.Warnings, t.res.Status = binary.LittleEndian.Uint16(p[1:]), binary.LittleEndian.Uint16(p[3:])
		t.st = stRows
		return StepMore, nil
	case stRows:
		switch {
		case first == 0xff && len(p) > 0:
			return t.err(p)
		case t.isTerminator(h, p):
			return t.end(p)
		}
		t.res.Rows++
		return StepMore, nil
	case stPrepareOK:
		if first == 0xff {
			return t.err(p)
		}
		r := reader{b: p}
		if r.byte1() != 0x00 {
			return 0, fmt.Errorf("%w: COM_STMT_PREPARE response %#x", ErrMalformed, first)
		}
		t.res.StmtID = r.uint32()
		t.res.NumColumns = r.uint16()
		t.res.NumParams = r.uint16()
		r.byte1()
		if len(r.b) >= 2 {
			t.res.Warnings = r.uint16()
		}
		if r.bad {
			return 0, fmt.Errorf("%w: COM_STMT_PREPARE OK", ErrMalformed)
		}
		return t.prepareNext(stPrepareOK)
	case stPrepareParams, stPrepareCols:
		t.left--
		if t.left > 0 {
			return StepMore, nil
		}
		if !t.deprecateEOF {
			t.st++ // the matching ...EOF state
			return StepMore, nil
		}
		return t.prepareNext(t.st)
	case stPrepareParamsEOF, stPrepareColsEOF:
		if !t.isEOF(h, p) {
			return 0, fmt.Errorf("%w: no EOF after prepared statement definitions", ErrMalformed)
		}
		return t.prepareNext(t.st)
	case stFieldList:
		switch {
		case first == 0xff && len(p) > 0:
			return t.err(p)
		case t.isTerminator(h, p):
			return StepDone, nil
		}
		return StepMore, nil
	case stSingle:
		switch {
		case first == 0x00 && len(p) > 0:
			return t.ok(p)
		case first == 0xff:
			return t.err(p)
		case t.isEOF(h, p):
			return StepDone, nil
		}
		return 0, fmt.Errorf("%w: %s answered with %#x", ErrMalformed, t.cmd, first)
	case stAny:
		if first == 0xff && len(p) > 0 {
			return t.err(p)
		}
		if h.Continued() {
			return 0, fmt.Errorf("%w: split COM_STATISTICS answer", ErrMalformed)
		}
		return StepDone, nil
	}
	return 0, fmt.Errorf("mysqlwire: tracker in state %d", t.st)
}

// prepareNext moves past the definitions block that ends in state from.
func (t *ResponseTracker) prepareNext(from rstate) (Step, error) {
	if from == stPrepareOK {
		if t.res.NumParams > 0 {
			t.st, t.left = stPrepareParams, int(t.res.NumParams)
			return StepMore, nil
		}
		from = stPrepareParamsEOF
	}
	if from == stPrepareParams || from == stPrepareParamsEOF {
		if t.res.NumColumns > 0 {
			t.st, t.left = stPrepareCols, int(t.res.NumColumns)
			return StepMore, nil
		}
	}
	return StepDone, nil
}

func (t *ResponseTracker) isEOF(h Header, p []byte) bool {
	return len(p) >= 5 && p[0] == 0xfe && h.Length < 9
}

// isTerminator reports whether p ends rows: an EOF, or under
// DEPRECATE_EOF an OK with the 0xFE header (a row starting with 0xFE is
// at least 16 MiB long, so its first physical packet is MaxPayload).
func (t *ResponseTracker) isTerminator(h Header, p []byte) bool {
	if len(p) == 0 || p[0] != 0xfe {
		return false
	}
	if t.deprecateEOF {
		return h.Length < MaxPayload
	}
	return h.Length < 9
}

func (t *ResponseTracker) end(p []byte) (Step, error) {
	if t.deprecateEOF {
		return t.ok(p)
	}
	w, s, err := ParseEOF(p)
	if err != nil {
		return 0, err
	}
	t.res.Warnings, t.res.Status = w, s
	return t.more(s)
}

func (t *ResponseTracker) ok(p []byte) (Step, error) {
	ok, err := ParseOK(p)
	if err != nil {
		return 0, err
	}
	t.res.AffectedRows += ok.AffectedRows
	t.res.LastInsertID = ok.LastInsertID
	t.res.Status, t.res.Warnings = ok.Status, ok.Warnings
	if t.st == stSingle || t.cmd == ComStmtFetch {
		return StepDone, nil
	}
	return t.more(ok.Status)
}

func (t *ResponseTracker) more(status uint16) (Step, error) {
	if status&StatusMoreResultsExist != 0 && t.cmd != ComStmtFetch {
		t.st = stResult
		return StepMore, nil
	}
	return StepDone, nil
}

func (t *ResponseTracker) err(p []byte) (Step, error) {
	e, err := ParseErr(p)
	if err != nil {
		return 0, err
	}
	t.res.Err = e
	return StepDone, nil
}
