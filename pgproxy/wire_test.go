package pgproxy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is 2 bytes: never cut inside it
		{"€€", 4, "€"},
		{"", 0, ""},
	} {
		if got := truncateUTF8(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestNewStmtText(t *testing.T) {
	short := newStmtText([]byte("SELECT 1"))
	if short.Text != "SELECT 1" || short.Truncated || short.SHA256 != "" {
		t.Fatalf("short: %+v", short)
	}
	long := strings.Repeat("ü", MaxStatementText) // 2 bytes per rune
	st := newStmtText([]byte(long))
	if !st.Truncated || st.TextBytes != len(long) || len(st.Text) > MaxStatementText || !utf8.ValidString(st.Text) || len(st.SHA256) != 64 {
		t.Fatalf("long: truncated=%v bytes=%d len=%d", st.Truncated, st.TextBytes, len(st.Text))
	}
}

func TestBindParams(t *testing.T) {
	// 2 format codes (text, binary), 3 params: "hi", 0x0102, NULL.
	b := []byte{0, 2, 0, 0, 0, 1, 0, 3, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 2, 1, 2, 0xff, 0xff, 0xff, 0xff}
	ps, ok := bindParams(b)
	if !ok || len(ps) != 3 || *ps[0] != "hi" || *ps[1] != `\x0102` || ps[2] != nil {
		t.Fatalf("bindParams: ok=%v %v", ok, ps)
	}
	for _, bad := range [][]byte{nil, {0, 5}, {0, 0, 0, 1, 0, 0, 0, 9, 'x'}} {
		if _, ok := bindParams(bad); ok {
			t.Errorf("bindParams(%v) accepted", bad)
		}
	}
}

func TestErrorFields(t *testing.T) {
	body := []byte("SERROR\x00VERROR\x00C22012\x00Mdivision by zero\x00\x00")
	sev, code, msg := errorFields(body)
	if sev != "ERROR" || code != "22012" || msg != "division by zero" {
		t.Fatalf("errorFields: %q %q %q", sev, code, msg)
	}
	if sev, code, _ := errorFields([]byte("Cabc")); sev != "" || code != "" {
		t.Fatal("unterminated field parsed")
	}
}

// TestResponseTracking pins how responses are matched to requests: an
// error in the extended protocol belongs to the failing request and skips
// to the next Sync.
func TestResponseTracking(t *testing.T) {
	q := &requestQueue{}
	q.push(unit{kind: 'P', stmt: 1})
	q.push(unit{kind: 'E', stmt: 2})
	q.push(unit{kind: 'S'})
	q.push(unit{kind: 'Q', stmt: 3})
	q.pop(never, func(u unit) bool { return u.kind == 'P' }) // ParseComplete
	if u, _ := q.head(); u.stmt != 2 {
		t.Fatalf("after ParseComplete head = %+v", u)
	}
	q.pop(func(u unit) bool { return u.kind != 'S' }, nil) // error in execute
	if u, _ := q.head(); u.kind != 'S' {
		t.Fatalf("after error head = %+v", u)
	}
	q.pop(func(u unit) bool { return u.kind == 'P' || u.kind == 'E' },
		func(u unit) bool { return u.kind == 'Q' || u.kind == 'S' || u.kind == 'F' }) // ReadyForQuery
	if u, _ := q.head(); u.stmt != 3 {
		t.Fatalf("after ReadyForQuery head = %+v", u)
	}
}
