package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
)

func checkString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("AppendString(%q) = %s, json.Marshal = %s", s, got, want)
	}
	if got := AppendString(nil, []byte(s)); !bytes.Equal(got, want) {
		t.Fatalf("AppendString([]byte %q) = %s, json.Marshal = %s", s, got, want)
	}
}

func TestAppendString(t *testing.T) {
	all := make([]byte, 0, 256)
	for c := range 256 {
		all = append(all, byte(c))
	}
	for _, s := range []string{
		"", "plain", `a"b\c` + "\n\r\t\b\f\x00\x01\x1f\x7f <tag>&amp;", string(all),
		"ok é 日本 🙂 \u2028 \u2029 \ufffd bad:\xff\xfe \xe2\x82 \xed\xa0\x80 end", "/path?q=1&r=<2>",
	} {
		checkString(t, s)
	}
}

func TestAppendStringAllocs(t *testing.T) {
	in := []byte("SELECT 'é日本🙂' FROM t WHERE a < 1 AND b = '\xff'")
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], in) }); n != 0 {
		t.Fatalf("AppendString allocates %v times per call", n)
	}
}

// FuzzAppendString compares AppendString with json.Marshal on arbitrary
// (also invalid UTF-8) input.
func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\n<>&\u2028\xff")
	f.Add("\xed\xa0\x80\xf4\x90\x80\x80")
	f.Fuzz(func(t *testing.T, s string) { checkString(t, s) })
}
