package audit

import (
	"bytes"
	"crypto/ed25519"
)

type ed25519PublicKey = ed25519.PublicKey

func ed25519Other() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
}
