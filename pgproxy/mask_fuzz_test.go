package pgproxy

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/sqlguard"
)

func fuzzMaskState(t testing.TB) *maskState {
	sp := &policy.Statements{Columns: []policy.ColumnMask{
		{Pattern: "orders.card_number", Action: policy.ColumnMaskValue},
		{Pattern: "users.email", Action: policy.ColumnHash},
	}}
	cat, err := sqlguard.NewCatalog(sp, [][]string{
		{"r", "100", "public", "orders", "r", ""},
		{"r", "101", "public", "users", "r", ""},
		{"a", "100", "public", "orders", "2", "card_number"},
		{"a", "101", "public", "users", "1", "email"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &maskState{cat: cat, key: []byte("k")}
}

func rowDesc(cols ...[2]uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(cols)))
	for i, c := range cols {
		b = append(b, byte('a'+i), 0)
		b = binary.BigEndian.AppendUint32(b, c[0])
		b = binary.BigEndian.AppendUint16(b, uint16(c[1]))
		b = binary.BigEndian.AppendUint32(b, 23) // int4
		b = binary.BigEndian.AppendUint16(b, 4)
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
		b = binary.BigEndian.AppendUint16(b, 1)
	}
	return b
}

// FuzzMaskMessages feeds RowDescription and DataRow bodies through the
// masking rewrite. Invariants: no panic; a malformed message is refused,
// never passed on half rewritten; in a rewritten row every masked column
// is the mask, a hash or NULL — never the value the server sent.
func FuzzMaskMessages(f *testing.F) {
	f.Add(rowDesc([2]uint32{100, 1}, [2]uint32{100, 2}), []byte("\x00\x02\x00\x00\x00\x011\x00\x00\x00\x104111111111111111"), false)
	f.Add(rowDesc([2]uint32{0, 0}), []byte("\x00\x01\xff\xff\xff\xff"), true)
	f.Add(rowDesc([2]uint32{101, 1}), []byte("\x00\x01\x00\x00\x00\x03a@b"), false)
	f.Add([]byte{0, 1, 'x'}, []byte{0, 1, 0, 0, 0, 9}, true)
	f.Fuzz(func(t *testing.T, desc, row []byte, touching bool) {
		m := fuzzMaskState(t)
		out, masked, denied, ok := m.rowDescription(desc, touching)
		if !ok || m.plan == nil {
			if out != nil {
				t.Fatal("a message for a refused or unmasked description")
			}
			return
		}
		if len(masked)+len(denied) == 0 || out[0] != 'T' || int(binary.BigEndian.Uint32(out[1:])) != len(out)-1 || len(out)-5 != len(desc) {
			t.Fatalf("rewritten description: %x", out)
		}
		got, ok := m.dataRow(row)
		if !ok {
			return
		}
		if got[0] != 'D' || int(binary.BigEndian.Uint32(got[1:])) != len(got)-1 {
			t.Fatalf("framing: %x", got)
		}
		cols, ok := textRowNullable(got[5:])
		orig, ok2 := textRowNullable(row)
		if !ok || !ok2 || len(cols) != len(m.plan) || len(orig) != len(cols) {
			t.Fatalf("row does not decode: %x", got)
		}
		for i, a := range m.plan {
			switch {
			case a == "" && !bytes.Equal(cols[i], orig[i]):
				t.Fatalf("column %d changed", i)
			case a != "" && cols[i] != nil && string(cols[i]) != maskedText && !strings.HasPrefix(string(cols[i]), "h:"):
				t.Fatalf("column %d not masked: %q", i, cols[i])
			case a != "" && (cols[i] == nil) != (orig[i] == nil):
				t.Fatalf("column %d: NULL changed", i)
			}
		}
	})
}

// FuzzWithheld: the rewrite of an error or notice keeps no M, D, H, W
// or q field of the original.
func FuzzWithheld(f *testing.F) {
	f.Add([]byte("SERROR\x00C22003\x00Mvalue \"4111\" is out of range\x00Dsecret\x00\x00"))
	f.Add([]byte("M\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		out := withheld('E', body)
		if out[0] != 'E' || int(binary.BigEndian.Uint32(out[1:])) != len(out)-1 || out[len(out)-1] != 0 {
			t.Fatalf("framing: %q", out)
		}
		for b := out[5:]; len(b) > 0 && b[0] != 0; {
			v, rest, ok := cstring(b[1:])
			if !ok {
				t.Fatalf("field framing: %q", out)
			}
			switch b[0] {
			case 'M':
				if string(v) != withheldText {
					t.Fatalf("message kept: %q", v)
				}
			case 'D', 'H', 'W', 'q', 'P', 'p', 'F', 'L', 'R':
				t.Fatalf("field %c kept", b[0])
			}
			b = rest
		}
	})
}

func textRowNullable(b []byte) ([][]byte, bool) {
	if len(b) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	var out [][]byte
	for range n {
		if len(b) < 4 {
			return nil, false
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l == -1 {
			out = append(out, nil)
			continue
		}
		if l < 0 || l > len(b) {
			return nil, false
		}
		out = append(out, append([]byte{}, b[:l]...))
		b = b[l:]
	}
	return out, len(b) == 0
}
