package evidence

import (
	"archive/zip"
	"bytes"
	"os"
	"testing"
)

// TestAttackPrependedZip: a pack with a second, forged zip before it (a
// grant.json saying "user": "carol") verifies: archive/zip reads the
// archive from its end and takes bytes before its first entry as
// prepended data. Tools that read the central directory (unzip, which
// warns "204 extra bytes at beginning", Python's zipfile) show the genuine
// files; a reader that walks the local headers from the start (`jar xf`
// extracts both grant.json, the later overwriting) meets the forged one
// first. Low: no tool tried shows only the forged files. A pack is one zip
// and nothing else; Verify could refuse bytes outside it (the first
// entry's local header at offset 0, the directory ending the file).
// ATTACK_ZIP_OUT names a file to write the pack to, for other tools.
func TestAttackPrependedZip(t *testing.T) {
	f := newFixture(t)
	pack := f.pack(t)
	var forged bytes.Buffer
	zw := zip.NewWriter(&forged)
	w, _ := zw.Create(fileGrant)
	w.Write([]byte(`{"id":"gr_1","user_name":"carol","resource":"prod-db","access":"read"}` + "\n"))
	zw.Close()
	bad := append(forged.Bytes(), pack...)
	if p := os.Getenv("ATTACK_ZIP_OUT"); p != "" {
		os.WriteFile(p, bad, 0o600)
	}
	if sum, err := Verify(bytes.NewReader(bad), int64(len(bad)), f.pub); err == nil {
		t.Errorf("a pack behind %d bytes of another zip verified (user %s)", forged.Len(), sum.User)
	}
}
