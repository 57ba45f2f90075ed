package mysqlwire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // hex payload
		want Request
	}{
		// COM_QUERY example of MySQL's protocol documentation.
		{"query/doc", "03 73 65 6c 65 63 74 20 40 40 76 65 72 73 69 6f 6e 5f 63 6f 6d 6d 65 6e 74 20 6c 69 6d 69 74 20 31",
			Request{Command: ComQuery, Text: "select @@version_comment limit 1"}},
		{"init-db", "02 74 65 73 74", Request{Command: ComInitDB, Text: "test"}},
		{"prepare", "16 53 45 4c 45 43 54 20 3f", Request{Command: ComStmtPrepare, Text: "SELECT ?"}},
		// COM_STMT_EXECUTE example of the documentation (payload).
		{"execute/doc", "17 01 00 00 00 00 01 00 00 00 00 01 0f 00 03 66 6f 6f",
			Request{Command: ComStmtExecute, StmtID: 1, Iterations: 1}},
		{"close", "19 07 00 00 00", Request{Command: ComStmtClose, StmtID: 7}},
		{"reset", "1a 07 00 00 00", Request{Command: ComStmtReset, StmtID: 7}},
		{"fetch", "1c 07 00 00 00 0a 00 00 00", Request{Command: ComStmtFetch, StmtID: 7, Rows: 10}},
		{"kill", "0c 2a 00 00 00", Request{Command: ComProcessKill, ProcessID: 42}},
		{"set-option", "1b 01 00", Request{Command: ComSetOption, Option: 1}},
		{"field-list", "04 74 31 00 25", Request{Command: ComFieldList, Text: "t1"}},
		{"quit", "01", Request{Command: ComQuit}},
		{"ping", "0e", Request{Command: ComPing}},
		{"change-user", "11 72 6f 6f 74 00", Request{Command: ComChangeUser}},
		{"unknown", "e0 01 02", Request{Command: 0xe0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCommand(unhex(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "17 01 00", "19 01", "0c 01 02 03"} {
		if _, err := ParseCommand(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if ComStmtExecute.String() != "COM_STMT_EXECUTE" || Command(0xe0).String() != "COM_0xe0" {
		t.Error("Command.String")
	}
}

func TestParseStmtExecute(t *testing.T) {
	doc := unhex(t, "17 01 00 00 00 00 01 00 00 00 00 01 0f 00 03 66 6f 6f")
	x, err := ParseStmtExecute(doc, ExecuteOptions{NumParams: 1, DecodeValues: true})
	if err != nil {
		t.Fatal(err)
	}
	if x.StmtID != 1 || !x.NewParamsBound || len(x.Params) != 1 || x.Params[0].Text != "foo" || x.Params[0].Type.Type != TypeVarchar {
		t.Fatalf("doc example: %+v", x)
	}
	// Without DecodeValues only the types are read.
	x, err = ParseStmtExecute(doc, ExecuteOptions{NumParams: 1})
	if err != nil || x.Params != nil || len(x.Types) != 1 {
		t.Fatalf("types only: %+v %v", x, err)
	}

	// Six parameters: NULL, signed tiny -1, unsigned longlong max, double,
	// datetime with microseconds, a long string cut at 4 bytes.
	p := []byte{0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0}
	p = append(p, 0x01, 1) // NULL bitmap: param 0; new-params-bound
	p = append(p, byte(TypeLong), 0, byte(TypeTiny), 0, byte(TypeLongLong), 0x80, byte(TypeDouble), 0,
		byte(TypeDateTime), 0, byte(TypeVarString), 0)
	p = append(p, 0xff)
	p = append(p, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	p = append(p, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f) // 1.5
	p = append(p, 11, 0xe8, 0x07, 12, 31, 23, 59, 58, 0x40, 0xe2, 0x01, 0)
	p = AppendLenencBytes(p, []byte("secret-value"))
	x, err = ParseStmtExecute(p, ExecuteOptions{NumParams: 6, DecodeValues: true, MaxValueLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "-1", "18446744073709551615", "1.5", "2024-12-31 23:59:58.123456", "secr"}
	for i, v := range x.Params {
		if v.Text != want[i] {
			t.Errorf("param %d: %q, want %q", i, v.Text, want[i])
		}
	}
	if !x.Params[0].Null || !x.Params[5].Truncated || x.Params[5].Len != 12 {
		t.Errorf("flags: %+v", x.Params)
	}
	// Re-execute without types: the previous ones apply.
	q := []byte{0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0}
	q = AppendLenencBytes(q, []byte("x"))
	x2, err := ParseStmtExecute(q, ExecuteOptions{NumParams: 1, PrevTypes: []ParamType{{Type: TypeString}}, DecodeValues: true})
	if err != nil || x2.Params[0].Text != "x" {
		t.Fatalf("prev types: %+v %v", x2, err)
	}
	if _, err := ParseStmtExecute(q, ExecuteOptions{NumParams: 1, DecodeValues: true}); !errors.Is(err, ErrMalformed) {
		t.Errorf("no types at all: %v", err)
	}
	// A string claiming more bytes than the packet has.
	bad := append([]byte{0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, byte(TypeString), 0}, 0xfc, 0xff, 0xff, 'a')
	if _, err := ParseStmtExecute(bad, ExecuteOptions{NumParams: 1, DecodeValues: true}); !errors.Is(err, ErrMalformed) {
		t.Errorf("overlong string: %v", err)
	}
	// Long data is not in the packet.
	ld := []byte{0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, byte(TypeBlob), 0}
	x3, err := ParseStmtExecute(ld, ExecuteOptions{NumParams: 1, DecodeValues: true, LongData: []bool{true}})
	if err != nil || !x3.Params[0].LongData {
		t.Fatalf("long data: %+v %v", x3, err)
	}
	// MaxParams bounds the decoded values.
	many := []byte{0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 1}
	many = append(many, []byte(strings.Repeat("\x06\x00", 16))...)
	x4, err := ParseStmtExecute(many, ExecuteOptions{NumParams: 16, DecodeValues: true, MaxParams: 3})
	if err != nil || len(x4.Params) != 3 || !x4.ParamsTrunc {
		t.Fatalf("max params: %+v %v", x4, err)
	}
}
