package audit

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	tamperOnce  sync.Once
	tamperLines []string
)

// chainLines is a deterministic 40-event export (checkpoints every 8 events).
func chainLines(t testing.TB) []string {
	tamperOnce.Do(func() {
		exp := smallExportN(t, 40, 8)
		tamperLines = strings.SplitAfter(strings.TrimSuffix(string(exp), "\n"), "\n")
	})
	return tamperLines
}

// FuzzTamperDetected applies one edit to a valid export — drop a line,
// duplicate one, swap two, move one, or change one byte — and checks that
// the result never verifies unless the edit left the file unchanged.
func FuzzTamperDetected(f *testing.F) {
	for op := range byte(5) {
		f.Add(op, uint16(3), uint16(9), byte('x'), uint16(17))
	}
	f.Fuzz(func(t *testing.T, op byte, i, j uint16, b byte, off uint16) {
		orig := chainLines(t)
		ls := append([]string(nil), orig...)
		n := len(ls)
		a, c := int(i)%n, int(j)%n
		switch op % 5 {
		case 0: // drop a line
			ls = append(ls[:a:a], ls[a+1:]...)
		case 1: // duplicate a line
			ls = append(ls[:a:a], append([]string{ls[a]}, ls[a:]...)...)
		case 2: // swap two lines
			ls[a], ls[c] = ls[c], ls[a]
		case 3: // move a line
			moved := ls[a]
			ls = append(ls[:a:a], ls[a+1:]...)
			c %= len(ls) + 1
			ls = append(ls[:c:c], append([]string{moved}, ls[c:]...)...)
		case 4: // change one byte (not the line's final newline)
			line := []byte(ls[a])
			k := int(off) % (len(line) - 1)
			line[k] = b
			ls[a] = string(line)
		}
		got := strings.Join(ls, "")
		rep, err := VerifyExport(strings.NewReader(got), testPub())
		if err != nil {
			t.Fatal(err)
		}
		if got == strings.Join(orig, "") {
			if !rep.OK {
				t.Fatalf("unchanged export failed: %+v", rep)
			}
			return
		}
		if rep.OK && !benignEdit(orig, ls) {
			t.Fatalf("tampered export verified (op %d, lines %d,%d): %+v", op%5, a, c, rep)
		}
	})
}

// benignEdit reports whether an edit left the events as they were: the
// event lines, with insignificant whitespace removed, are the original's,
// or the original's without the first event (indistinguishable from a
// --since export). Checkpoint lines may be dropped, duplicated or moved
// earlier: a checkpoint is an attestation, and an export without one
// verifies the chain alone (documented).
func benignEdit(orig, edited []string) bool {
	want := eventLines(orig)
	got := eventLines(edited)
	return slices.Equal(got, want) || slices.Equal(got, want[1:])
}

func eventLines(ls []string) []string {
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l, `{"type":"event"`) || !strings.HasPrefix(l, `{"type":"checkpoint"`) {
			out = append(out, string(bytes.Join(bytes.Fields([]byte(l)), nil)))
		}
	}
	return out
}
