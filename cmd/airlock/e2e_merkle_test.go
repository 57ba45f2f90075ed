package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// witnessLines returns the checkpoints in a witness file.
func witnessLines(t *testing.T, path string) []airlock.Checkpoint {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []airlock.Checkpoint
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var c airlock.Checkpoint
		if err := json.Unmarshal(l, &c); err != nil {
			t.Fatalf("witness line %q: %v", l, err)
		}
		out = append(out, c)
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if os.IsNotExist(err) {
		os.Remove(to)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestE2EMerkleProofsAndWitness (issue 20 items 1–2): through the CLI
// against a running server with a file witness on another path: an
// inclusion and a consistency proof verify offline with only the public
// key, a modified proof is refused, the log verifies against its witness,
// and a store rolled back to an old copy of its SQLite file (which
// verifies on its own) is caught by the witness.
func TestE2EMerkleProofsAndWitness(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	dataDir := filepath.Join(t.TempDir(), "data")
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	tweak := func(c *serverConfig) { c.AuditWitnesses = witness; c.CheckpointEvery = 5 }
	h := startHarness(t, dataDir, clk, tweak)
	admin := t.TempDir()
	secret := h.bootstrapAdmin(admin, "admin", "admin password 1")
	h.step()
	h.must(admin, "", "mfa", "verify", "--otp", totp(t, secret, clk.Now()))
	for range 12 { // audit.read events
		h.must(admin, "", "audit", "tail", "-n", "1")
	}
	waitFor(t, func() bool { return len(witnessLines(t, witness)) >= 2 })
	pub := filepath.Join(dataDir, "audit.pub")
	dir := t.TempDir()

	// Inclusion: event 3 in the newest signed tree, checked offline.
	proofFile := filepath.Join(dir, "proof-3.json")
	if err := os.WriteFile(proofFile, []byte(h.must(admin, "", "audit", "prove", "3")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := h.must(admin, "", "audit", "verify-proof", proofFile, "--pubkey", pub); !strings.HasPrefix(out, "OK: event 3 ") {
		t.Fatalf("verify-proof: %s", out)
	}
	// A modified proof is refused with exit 1.
	var p map[string]any
	b, _ := os.ReadFile(proofFile)
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p["event"].(map[string]any)["action"] = "nothing.happened"
	forged, _ := json.Marshal(p)
	forgedFile := filepath.Join(dir, "forged.json")
	os.WriteFile(forgedFile, forged, 0o600)
	out, err := h.run(admin, "", "audit", "verify-proof", forgedFile, "--pubkey", pub)
	var ee *exitError
	if err == nil || !strings.Contains(out, "FAILED") || !asExit(err, &ee) || ee.code != 1 {
		t.Fatalf("forged proof: %v\n%s", err, out)
	}

	// A proof that cannot be made (no such event) is refused and leaves
	// no audit.proved claiming it was given.
	proved := len(h.auditEvents(admin, "audit.proved"))
	if out, err := h.run(admin, "", "audit", "prove", "999999"); err == nil {
		t.Fatalf("proof of an event that does not exist: %s", out)
	}
	if n := len(h.auditEvents(admin, "audit.proved")); n != proved {
		t.Fatalf("audit.proved events %d → %d for a proof that failed", proved, n)
	}

	// Consistency between the first two witnessed checkpoints.
	cps := witnessLines(t, witness)
	if cps[0].Root == "" || cps[1].Seq <= cps[0].Seq {
		t.Fatalf("witnessed checkpoints: %+v", cps)
	}
	cons := filepath.Join(dir, "consistency.json")
	os.WriteFile(cons, []byte(h.must(admin, "", "audit", "prove", "--consistency", itoa(cps[0].Seq), itoa(cps[1].Seq))), 0o600)
	if out := h.must(admin, "", "audit", "verify-proof", cons, "--pubkey", pub); !strings.HasPrefix(out, "OK: the log of ") {
		t.Fatalf("verify-proof consistency: %s", out)
	}
	if out := h.must(admin, "", "audit", "verify", "--witness", witness, "--pubkey", pub); !strings.Contains(out, "not rolled back or truncated") {
		t.Fatalf("verify --witness: %s", out)
	}

	// Keep a copy of the store, write on (the witness follows), and put
	// the old copy back.
	h.stop()
	db := filepath.Join(dataDir, "airlock.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, db+suffix, filepath.Join(dir, "old.db"+suffix))
	}
	before := len(witnessLines(t, witness))
	h2 := startHarness(t, dataDir, clk, func(c *serverConfig) { tweak(c); c.HTTPAddr = strings.TrimPrefix(h.url, "http://") })
	for range 12 {
		h2.must(admin, "", "audit", "tail", "-n", "1")
	}
	waitFor(t, func() bool { return len(witnessLines(t, witness)) > before+1 })
	h2.stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(db + suffix)
		copyFile(t, filepath.Join(dir, "old.db"+suffix), db+suffix)
	}
	h3 := startHarness(t, dataDir, clk, func(c *serverConfig) { tweak(c); c.HTTPAddr = strings.TrimPrefix(h.url, "http://") })
	// The old copy verifies on its own ...
	if out := h3.must(admin, "", "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("the rolled-back store alone: %s", out)
	}
	// ... the witness shows it is behind.
	out, err = h3.run(admin, "", "audit", "verify", "--witness", witness, "--pubkey", pub)
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "rolled back or truncated behind the newest witnessed checkpoint") {
		t.Fatalf("verify --witness after a rollback: %v\n%s", err, out)
	}
}

func asExit(err error, target **exitError) bool { return errors.As(err, target) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
