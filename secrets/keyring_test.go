package secrets

import (
	"bytes"
	"testing"
)

func TestDerive(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, KeySize)
	k2 := bytes.Repeat([]byte{2}, KeySize)
	a, _ := NewKeyring("a", map[string][]byte{"a": k1, "b": k2})
	a2, _ := NewKeyring("a", map[string][]byte{"a": k1})
	b, _ := NewKeyring("b", map[string][]byte{"a": k1, "b": k2})
	x := a.Derive("x")
	if len(x) != 32 || !bytes.Equal(x, a2.Derive("x")) {
		t.Fatal("Derive is not a function of the current key and purpose")
	}
	if bytes.Equal(x, a.Derive("y")) || bytes.Equal(x, b.Derive("x")) || bytes.Equal(x, k1) {
		t.Fatal("Derive does not separate purposes and keys")
	}
}
