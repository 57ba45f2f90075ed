package mysqlwire

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Command is the first byte of a client's command packet.
type Command byte

// Commands (MySQL's COM_ numbers; ComStmtBulkExecute is MariaDB's).
const (
	ComSleep            Command = 0x00
	ComQuit             Command = 0x01
	ComInitDB           Command = 0x02
	ComQuery            Command = 0x03
	ComFieldList        Command = 0x04
	ComCreateDB         Command = 0x05
	ComDropDB           Command = 0x06
	ComRefresh          Command = 0x07
	ComShutdown         Command = 0x08
	ComStatistics       Command = 0x09
	ComProcessInfo      Command = 0x0a
	ComConnect          Command = 0x0b
	ComProcessKill      Command = 0x0c
	ComDebug            Command = 0x0d
	ComPing             Command = 0x0e
	ComTime             Command = 0x0f
	ComDelayedInsert    Command = 0x10
	ComChangeUser       Command = 0x11
	ComBinlogDump       Command = 0x12
	ComTableDump        Command = 0x13
	ComConnectOut       Command = 0x14
	ComRegisterSlave    Command = 0x15
	ComStmtPrepare      Command = 0x16
	ComStmtExecute      Command = 0x17
	ComStmtSendLongData Command = 0x18
	ComStmtClose        Command = 0x19
	ComStmtReset        Command = 0x1a
	ComSetOption        Command = 0x1b
	ComStmtFetch        Command = 0x1c
	ComDaemon           Command = 0x1d
	ComBinlogDumpGTID   Command = 0x1e
	ComResetConnection  Command = 0x1f
	ComStmtBulkExecute  Command = 0xfa
)

var comNames = map[Command]string{
	ComSleep: "COM_SLEEP", ComQuit: "COM_QUIT", ComInitDB: "COM_INIT_DB", ComQuery: "COM_QUERY",
	ComFieldList: "COM_FIELD_LIST", ComCreateDB: "COM_CREATE_DB", ComDropDB: "COM_DROP_DB",
	ComRefresh: "COM_REFRESH", ComShutdown: "COM_SHUTDOWN", ComStatistics: "COM_STATISTICS",
	ComProcessInfo: "COM_PROCESS_INFO", ComConnect: "COM_CONNECT", ComProcessKill: "COM_PROCESS_KILL",
	ComDebug: "COM_DEBUG", ComPing: "COM_PING", ComTime: "COM_TIME", ComDelayedInsert: "COM_DELAYED_INSERT",
	ComChangeUser: "COM_CHANGE_USER", ComBinlogDump: "COM_BINLOG_DUMP", ComTableDump: "COM_TABLE_DUMP",
	ComConnectOut: "COM_CONNECT_OUT", ComRegisterSlave: "COM_REGISTER_SLAVE",
	ComStmtPrepare: "COM_STMT_PREPARE", ComStmtExecute: "COM_STMT_EXECUTE",
	ComStmtSendLongData: "COM_STMT_SEND_LONG_DATA", ComStmtClose: "COM_STMT_CLOSE",
	ComStmtReset: "COM_STMT_RESET", ComSetOption: "COM_SET_OPTION", ComStmtFetch: "COM_STMT_FETCH",
	ComDaemon: "COM_DAEMON", ComBinlogDumpGTID: "COM_BINLOG_DUMP_GTID",
	ComResetConnection: "COM_RESET_CONNECTION", ComStmtBulkExecute: "COM_STMT_BULK_EXECUTE",
}

// String returns the COM_ name, or "COM_0x.." for an unknown number.
func (c Command) String() string {
	if s, ok := comNames[c]; ok {
		return s
	}
	return fmt.Sprintf("COM_0x%02x", byte(c))
}

// Request is a parsed command packet. Which fields are set depends on
// Command:
//
//	COM_QUERY, COM_STMT_PREPARE   Text (the SQL)
//	COM_INIT_DB                   Text (the database)
//	COM_FIELD_LIST                Text (the table)
//	COM_STMT_EXECUTE              StmtID, Flags, Iterations (parameters: ParseStmtExecute)
//	COM_STMT_CLOSE, COM_STMT_RESET StmtID
//	COM_STMT_FETCH                StmtID, Rows
//	COM_STMT_SEND_LONG_DATA       StmtID, Param (Text holds the data)
//	COM_PROCESS_KILL              ProcessID
//	COM_SET_OPTION                Option
//
// Other commands carry only Command; their payload is not interpreted.
type Request struct {
	Command    Command
	Text       string
	StmtID     uint32
	Flags      uint8
	Iterations uint32
	Rows       uint32
	Param      uint16
	ProcessID  uint32
	Option     uint16
}

// Cursor flags of COM_STMT_EXECUTE.
const (
	CursorReadOnly   uint8 = 0x01
	CursorForUpdate  uint8 = 0x02
	CursorScrollable uint8 = 0x04
)

// ParseCommand decodes a command packet's payload. An empty payload is
// malformed; an unknown command number is returned with only Command set.
func ParseCommand(p []byte) (*Request, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: empty command packet", ErrMalformed)
	}
	q := &Request{Command: Command(p[0])}
	r := reader{b: p[1:]}
	switch q.Command {
	case ComQuery, ComStmtPrepare, ComInitDB:
		q.Text = string(r.rest())
	case ComFieldList:
		q.Text = string(r.nulOrEOF())
	case ComStmtExecute:
		q.StmtID = r.uint32()
		q.Flags = r.byte1()
		q.Iterations = r.uint32()
	case ComStmtClose, ComStmtReset:
		q.StmtID = r.uint32()
	case ComStmtFetch:
		q.StmtID = r.uint32()
		q.Rows = r.uint32()
	case ComStmtSendLongData:
		q.StmtID = r.uint32()
		q.Param = r.uint16()
		q.Text = string(r.rest())
	case ComProcessKill:
		q.ProcessID = r.uint32()
	case ComSetOption:
		q.Option = r.uint16()
	}
	if err := r.err(q.Command.String()); err != nil {
		return nil, err
	}
	return q, nil
}

// AppendCommand appends a command payload with a text argument
// (COM_QUERY, COM_INIT_DB, COM_STMT_PREPARE) or none.
func AppendCommand(b []byte, c Command, text string) []byte {
	return append(append(b, byte(c)), text...)
}

// FieldType is a column or parameter type of the binary protocol.
type FieldType byte

// Field types.
const (
	TypeDecimal    FieldType = 0x00
	TypeTiny       FieldType = 0x01
	TypeShort      FieldType = 0x02
	TypeLong       FieldType = 0x03
	TypeFloat      FieldType = 0x04
	TypeDouble     FieldType = 0x05
	TypeNull       FieldType = 0x06
	TypeTimestamp  FieldType = 0x07
	TypeLongLong   FieldType = 0x08
	TypeInt24      FieldType = 0x09
	TypeDate       FieldType = 0x0a
	TypeTime       FieldType = 0x0b
	TypeDateTime   FieldType = 0x0c
	TypeYear       FieldType = 0x0d
	TypeNewDate    FieldType = 0x0e
	TypeVarchar    FieldType = 0x0f
	TypeBit        FieldType = 0x10
	TypeJSON       FieldType = 0xf5
	TypeNewDecimal FieldType = 0xf6
	TypeEnum       FieldType = 0xf7
	TypeSet        FieldType = 0xf8
	TypeTinyBlob   FieldType = 0xf9
	TypeMediumBlob FieldType = 0xfa
	TypeLongBlob   FieldType = 0xfb
	TypeBlob       FieldType = 0xfc
	TypeVarString  FieldType = 0xfd
	TypeString     FieldType = 0xfe
	TypeGeometry   FieldType = 0xff
)

// ParamType is a parameter's type as COM_STMT_EXECUTE sends it: the type
// and whether an integer is unsigned.
type ParamType struct {
	Type     FieldType
	Unsigned bool
}

// Value is one decoded parameter, for audit. Text is its value as SQL
// would print it (numbers in decimal, dates as 'YYYY-MM-DD hh:mm:ss',
// strings as they are), cut at ExecuteOptions.MaxValueLen bytes.
type Value struct {
	Type      ParamType
	Null      bool
	LongData  bool // sent before with COM_STMT_SEND_LONG_DATA; not in the packet
	Text      string
	Len       int  // the value's full length in bytes
	Truncated bool // Text was cut
}

// ExecuteOptions says what ParseStmtExecute needs to know about the
// statement (from its COM_STMT_PREPARE response and earlier executes) and
// how much to keep.
type ExecuteOptions struct {
	NumParams int         // from the PREPARE OK (ResponseTracker.Result().NumParams)
	PrevTypes []ParamType // types bound by the previous execute of this statement
	LongData  []bool      // params that got COM_STMT_SEND_LONG_DATA since the last execute
	// DecodeValues asks for the values; without it only the types are read.
	DecodeValues bool
	MaxValueLen  int // bytes of Text kept per value; 0 means 256
	MaxParams    int // values decoded at most; 0 means 1024
}

// StmtExecute is a parsed COM_STMT_EXECUTE.
type StmtExecute struct {
	StmtID     uint32
	Flags      uint8
	Iterations uint32
	// Types are the parameter types in force: the ones bound by this
	// packet (NewParamsBound) or opts.PrevTypes; keep them for the next
	// execute of the statement.
	Types          []ParamType
	NewParamsBound bool
	Params         []Value // with DecodeValues
	ParamsTrunc    bool    // more than MaxParams parameters
}

// ParseStmtExecute decodes a COM_STMT_EXECUTE payload. Without
// CapQueryAttributes (which ServerCapabilities never offers) this is the
// layout: statement id, flags, iteration count, and when the statement has
// parameters a NULL bitmap, the new-params-bound flag, the types if bound,
// and the values. A packet that leaves parameters without types (none
// bound now or before) is malformed.
func ParseStmtExecute(p []byte, opts ExecuteOptions) (*StmtExecute, error) {
	r := reader{b: p}
	if Command(r.byte1()) != ComStmtExecute {
		return nil, fmt.Errorf("%w: not COM_STMT_EXECUTE", ErrMalformed)
	}
	x := &StmtExecute{StmtID: r.uint32(), Flags: r.byte1(), Iterations: r.uint32()}
	n := opts.NumParams
	if n <= 0 || r.bad {
		return x, r.err("COM_STMT_EXECUTE")
	}
	if n > math.MaxUint16 {
		return nil, fmt.Errorf("%w: %d parameters", ErrMalformed, n)
	}
	nulls := r.bytes((n + 7) / 8)
	x.NewParamsBound = r.byte1() == 1
	if r.bad {
		return nil, r.err("COM_STMT_EXECUTE")
	}
	if x.NewParamsBound {
		if len(r.b) < 2*n {
			return nil, fmt.Errorf("%w: COM_STMT_EXECUTE parameter types", ErrMalformed)
		}
		x.Types = make([]ParamType, n)
		for i := range x.Types {
			x.Types[i] = ParamType{Type: FieldType(r.byte1()), Unsigned: r.byte1()&0x80 != 0}
		}
	} else {
		if len(opts.PrevTypes) != n {
			return nil, fmt.Errorf("%w: COM_STMT_EXECUTE without parameter types", ErrMalformed)
		}
		x.Types = opts.PrevTypes
	}
	if !opts.DecodeValues {
		return x, nil
	}
	maxLen := cmp0(opts.MaxValueLen, 256)
	maxN := cmp0(opts.MaxParams, 1024)
	for i := range n {
		if i >= maxN {
			x.ParamsTrunc = true
			break
		}
		v := Value{Type: x.Types[i]}
		switch {
		case nulls[i/8]&(1<<(i%8)) != 0:
			v.Null = true
		case i < len(opts.LongData) && opts.LongData[i]:
			v.LongData = true
		default:
			decodeValue(&r, &v, maxLen)
			if r.bad {
				return nil, fmt.Errorf("%w: COM_STMT_EXECUTE parameter %d", ErrMalformed, i+1)
			}
		}
		x.Params = append(x.Params, v)
	}
	return x, nil
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func decodeValue(r *reader, v *Value, maxLen int) {
	set := func(s string) { v.Text, v.Len = s, len(s) }
	switch v.Type.Type {
	case TypeNull:
		v.Null = true
	case TypeTiny:
		b := r.byte1()
		if v.Type.Unsigned {
			set(strconv.FormatUint(uint64(b), 10))
		} else {
			set(strconv.FormatInt(int64(int8(b)), 10))
		}
	case TypeShort, TypeYear:
		u := r.uint16()
		if v.Type.Unsigned || v.Type.Type == TypeYear {
			set(strconv.FormatUint(uint64(u), 10))
		} else {
			set(strconv.FormatInt(int64(int16(u)), 10))
		}
	case TypeLong, TypeInt24:
		u := r.uint32()
		if v.Type.Unsigned {
			set(strconv.FormatUint(uint64(u), 10))
		} else {
			set(strconv.FormatInt(int64(int32(u)), 10))
		}
	case TypeLongLong:
		u := r.uint64()
		if v.Type.Unsigned {
			set(strconv.FormatUint(u, 10))
		} else {
			set(strconv.FormatInt(int64(u), 10))
		}
	case TypeFloat:
		set(strconv.FormatFloat(float64(math.Float32frombits(r.uint32())), 'g', -1, 32))
	case TypeDouble:
		set(strconv.FormatFloat(math.Float64frombits(r.uint64()), 'g', -1, 64))
	case TypeDate, TypeDateTime, TypeTimestamp, TypeNewDate:
		b := r.lenencBytes()
		set(formatDateTime(b))
	case TypeTime:
		b := r.lenencBytes()
		set(formatTime(b))
	default: // strings, decimals, blobs, JSON, bit, enum, set, geometry
		b := r.lenencBytes()
		v.Len = len(b)
		if len(b) > maxLen {
			b, v.Truncated = b[:maxLen], true
		}
		v.Text = string(b)
	}
}

func formatDateTime(b []byte) string {
	var y, mo, d, h, mi, s int
	var us uint32
	switch len(b) {
	case 0:
		return "0000-00-00 00:00:00"
	case 11:
		us = binary.LittleEndian.Uint32(b[7:])
		fallthrough
	case 7:
		h, mi, s = int(b[4]), int(b[5]), int(b[6])
		fallthrough
	case 4:
		y, mo, d = int(binary.LittleEndian.Uint16(b)), int(b[2]), int(b[3])
	default:
		return fmt.Sprintf("<datetime of %d bytes>", len(b))
	}
	out := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi, s)
	if us != 0 {
		out += fmt.Sprintf(".%06d", us)
	}
	return out
}

func formatTime(b []byte) string {
	if len(b) == 0 {
		return "00:00:00"
	}
	if len(b) != 8 && len(b) != 12 {
		return fmt.Sprintf("<time of %d bytes>", len(b))
	}
	sign := ""
	if b[0] == 1 {
		sign = "-"
	}
	days := binary.LittleEndian.Uint32(b[1:])
	h := uint64(days)*24 + uint64(b[5])
	out := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, b[6], b[7])
	if len(b) == 12 {
		if us := binary.LittleEndian.Uint32(b[8:]); us != 0 {
			out += fmt.Sprintf(".%06d", us)
		}
	}
	return out
}
