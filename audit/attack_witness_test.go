package audit

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/airlockhq/airlock"
)

func readWitnessAll(t *testing.T, path string) []airlock.Checkpoint {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := ReadWitnessedAll(f, testPub())
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestAttackWitnessRollbackThenRegrow: the store is replaced by another
// history (a rollback, or a rewrite by whoever holds the server and its
// key) while the witness stays configured. The witness goes on receiving
// the new history's checkpoints; once the new history is longer than the
// old, the record's newest checkpoint is one of the new history's.
// `airlock audit verify --witness` used to check only that one and passed,
// though the record also holds the old history's seq 250 checkpoint,
// which the store contradicts. It now checks every witnessed checkpoint
// (ReadWitnessedAll).
func TestAttackWitnessRollbackThenRegrow(t *testing.T) {
	_, path := witnessedLog(t, 250, 100)
	before, _ := readWitnessFile(t, path)
	other := &memStore{}
	l := openLog(t, other, Options{CheckpointEvery: 100, MaxBatch: 50, Witnesses: []Witness{&FileWitness{Path: path}}})
	for i := range 300 {
		if _, err := l.Append(context.Background(), sampleEvent(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	newest, _ := readWitnessFile(t, path)
	if rep := verifyWitnessed(t, other, newest); !rep.OK {
		t.Fatalf("against the newest alone the rewrite is expected to pass (the old check): %+v", rep)
	}
	all := readWitnessAll(t, path)
	rep, err := VerifyExportWitnessed(bytes.NewReader(exportBytes(t, other, airlock.EventFilter{})), testPub(), all)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatalf("the rewritten store passes against all %d witnessed checkpoints (the old history's newest at seq %d)", len(all), before.Seq)
	}
	t.Logf("against all %d witnessed checkpoints: %s", len(all), rep.Message)
}

// TestAttackWitnessAllIntact: an intact store verifies against every
// checkpoint of its witness record, whole and as a --since export.
func TestAttackWitnessAllIntact(t *testing.T) {
	store, path := witnessedLog(t, 250, 100)
	all := readWitnessAll(t, path)
	rep, err := VerifyExportWitnessed(bytes.NewReader(exportBytes(t, store, airlock.EventFilter{})), testPub(), all)
	if err != nil || !rep.OK {
		t.Fatalf("intact store against %d witnessed checkpoints: %+v, %v", len(all), rep, err)
	}
}

// TestAttackWitnessAllPartialExport: an export from seq 151 on (AfterSeq
// 150) against a record that also holds checkpoints before it (seq 100):
// what each way of checking says.
func TestAttackWitnessAllPartialExport(t *testing.T) {
	store, path := witnessedLog(t, 250, 100)
	all := readWitnessAll(t, path)
	newest, _ := readWitnessFile(t, path)
	exp := exportBytes(t, store, airlock.EventFilter{AfterSeq: 150})
	one, err := VerifyExportWitnessed(bytes.NewReader(exp), testPub(), []airlock.Checkpoint{newest})
	if err != nil {
		t.Fatal(err)
	}
	every, err := VerifyExportWitnessed(bytes.NewReader(exp), testPub(), all)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("newest only: OK %v %s; all %d: OK %v %s", one.OK, one.Message, len(all), every.OK, every.Message)
	if one.OK != every.OK {
		t.Errorf("a partial export verifies %v against the newest and %v against all witnessed checkpoints", one.OK, every.OK)
	}
}
