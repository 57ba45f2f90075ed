package mysqlproxy

import (
	"strings"
	"testing"
)

func TestUseTarget(t *testing.T) {
	for _, c := range []struct {
		text, db string
		use      bool
	}{
		{"USE app", "app", true},
		{"use `app`", "app", true},
		{"  /* hi */ USE `we``ird`;", "we`ird", true},
		{"# c\nuse app ;", "app", true},
		{"-- c\nUse app", "app", true},
		{"/*!40101 USE other */", "other", true}, // executable comment: read inside; its closer separates tokens
		{"/*!USE*/ other", "other", true},
		{"/*!50000USE*/`other`", "other", true},
		{"/*M!100000 USE*/ other", "other", true},
		{"--\x01\nUSE other", "other", true}, // "--" and any control character: a comment to the server
		{"--\r\nUSE other", "other", true},
		{"USE/**/other", "other", true},
		{"USE app; DROP TABLE x", "", true},
		{"USE", "", true},
		{"USE `unterminated", "", true},
		{"/* unterminated USE x", "", false}, // the server refuses it as a syntax error
		{"SELECT 1", "", false},
		{"/*!40101 SET NAMES utf8 */", "", false},
		{"USER()", "", false},
		{"used", "", false},
		{"select * from app.t where x = 'USE other'", "", false},
	} {
		db, use := useTarget(c.text)
		if db != c.db || use != c.use {
			t.Errorf("useTarget(%q) = %q, %v; want %q, %v", c.text, db, use, c.db, c.use)
		}
	}
}

func TestKillTarget(t *testing.T) {
	for _, c := range []struct {
		text       string
		kind       string
		id         uint32
		isKill, ok bool
	}{
		{"KILL 42", "CONNECTION ", 42, true, true},
		{"kill query 7;", "QUERY ", 7, true, true},
		{"KILL CONNECTION 9", "CONNECTION ", 9, true, true},
		{"/*!50000 KILL 3 */", "", 0, true, false},
		{"/*!KILL*/ 3", "CONNECTION ", 3, true, true},
		{"/*!50000KILL*/ QUERY 3", "QUERY ", 3, true, true},
		{"KILL/**/3", "CONNECTION ", 3, true, true},
		{"--\x01\nKILL 3", "CONNECTION ", 3, true, true},
		{"KILL HARD 3", "", 0, true, false},
		{"KILL QUERY 5 /* x */", "", 0, true, false},
		{"KILL QUERY ID 5", "", 0, true, false},
		{"killer", "", 0, false, false},
		{"SELECT 'KILL 5'", "", 0, false, false},
	} {
		kind, id, isKill, ok := killTarget(c.text)
		if kind != c.kind || id != c.id || isKill != c.isKill || ok != c.ok {
			t.Errorf("killTarget(%q) = %q %d %v %v", c.text, kind, id, isKill, ok)
		}
	}
}

func TestDynamicSQL(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"PREPARE s FROM 'KILL 5'", true},
		{"/*!PREPARE*/ s FROM @q", true},
		{"EXECUTE IMMEDIATE 'USE other'", true},
		{"execute\timmediate @q", true},
		{"BEGIN NOT ATOMIC KILL 5; END", true},
		{"IF 1 THEN KILL 5; END IF", true},
		{"x: LOOP KILL 5; LEAVE x; END LOOP", true},
		{"WHILE 1 DO KILL 5; END WHILE", true},
		{"BEGIN", false},
		{"BEGIN WORK", false},
		{"EXECUTE s", false},
		{"SELECT IF(1, 2, 3)", false},
		{"SET @a := 1", false},
		{"preparex", false},
	} {
		if got := dynamicSQL(c.text); got != c.want {
			t.Errorf("dynamicSQL(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

// FuzzStatements: no text panics either reader; a text the gateway lets
// through as "not USE" never starts (after whitespace and comments) with
// the word USE, and a readable USE names a database that round-trips.
func FuzzStatements(f *testing.F) {
	for _, s := range []string{"USE a", "use `a``b`", "/*x*/use a;", "#\nUSE a", "KILL QUERY 1", "/*!1 USE a */", "SELECT 1",
		"/*!USE*/ a", "--\x01\nKILL 1", "/*!KILL*/ 1", "PREPARE s FROM 'KILL 1'", "BEGIN NOT ATOMIC KILL 1; END", "l: LOOP KILL 1; END LOOP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		db, use := useTarget(text)
		killTarget(text)
		dynamicSQL(text)
		if !use {
			s, _ := skipSpaceAndComments(text)
			if w, rest := word(s); strings.EqualFold(w, "use") && (rest == "" || !identByte(rest[0])) {
				t.Fatalf("%q starts with USE but was let through", text)
			}
		}
		if use && db != "" && strings.ContainsAny(db, "\x00") && !strings.Contains(text, "\x00") {
			t.Fatalf("database %q not from the text", db)
		}
	})
}
