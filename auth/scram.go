package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// SCRAMIterations is the PBKDF2 iteration count of verifiers made for
// connect tokens. Iterations slow down guessing a low-entropy password
// from a stolen verifier; a connect token is 256 random bits that live
// 60 s, so no count changes what guessing costs, while every client pays
// the count on every connection (libpq with OpenSSL 3 spent ~9 ms of CPU
// per connection at PostgreSQL's 4,096, more than everything else a new
// session costs). Clients accept any count from 1 (libpq, pgx, JDBC; since
// PostgreSQL 16 servers may be configured that low too).
const SCRAMIterations = 16

// SCRAMVerifier is what a server keeps to check a SCRAM-SHA-256 proof
// (RFC 5802, RFC 7677) without knowing the password.
type SCRAMVerifier struct {
	StoredKey []byte // SHA-256(ClientKey)
	ServerKey []byte // HMAC(SaltedPassword, "Server Key")
}

// NewSCRAMVerifier derives the verifier of password for salt and iter.
func NewSCRAMVerifier(password string, salt []byte, iter int) SCRAMVerifier {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		panic(err) // only for lengths and counts this package never uses
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return SCRAMVerifier{StoredKey: stored[:], ServerKey: hmacSHA256(salted, "Server Key")}
}

// SCRAMSalt returns the salt of every SCRAM verifier for one user and one
// resource. It is derived, not random, so that one server-first message
// serves all of that user's live tokens for the resource (the client
// proves which one it holds); salts are not secret.
func SCRAMSalt(userID, resource string) []byte {
	s := sha256.Sum256([]byte("airlock scram salt\x00" + userID + "\x00" + resource))
	return s[:16]
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// ErrSCRAM is the cause of every SCRAM failure: a malformed message or a
// proof that matches no verifier. Callers answer every failure alike.
var ErrSCRAM = errors.New("auth: SCRAM authentication failed")

// MaxSCRAMMessage is the largest client message SCRAMServer accepts.
const MaxSCRAMMessage = 2048

// SCRAMServer is the server side of one SCRAM-SHA-256 exchange without
// channel binding (the PostgreSQL SASL mechanism "SCRAM-SHA-256"). Use it
// once: ClientFirst, then ClientFinal.
type SCRAMServer struct {
	salt []byte
	iter int

	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
	done            bool // ClientFinal was called
}

// NewSCRAMServer starts an exchange whose verifiers use salt and iter.
func NewSCRAMServer(salt []byte, iter int) *SCRAMServer {
	return &SCRAMServer{salt: salt, iter: iter}
}

// ClientFirst reads the client-first-message and returns the
// server-first-message. Channel binding ("p=…") and authorization
// identities are refused; "y" (client could bind, server did not offer)
// is accepted, as RFC 5802 says when the server offers no -PLUS mechanism.
// The user name inside the message is ignored: PostgreSQL takes it from
// the startup packet.
func (s *SCRAMServer) ClientFirst(msg []byte) ([]byte, error) {
	if s.serverFirst != "" || len(msg) > MaxSCRAMMessage {
		return nil, ErrSCRAM
	}
	m := string(msg)
	var header string
	switch {
	case strings.HasPrefix(m, "n,,"), strings.HasPrefix(m, "y,,"):
		header, m = m[:3], m[3:]
	default:
		return nil, ErrSCRAM
	}
	attrs := strings.Split(m, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, ErrSCRAM
	}
	cnonce := attrs[1][2:]
	if !printableNonce(cnonce) {
		return nil, ErrSCRAM
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	s.gs2Header = header
	s.clientFirstBare = m
	s.nonce = cnonce + base64.StdEncoding.EncodeToString(b[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.salt) + ",i=" + strconv.Itoa(s.iter)
	return []byte(s.serverFirst), nil
}

// printableNonce reports whether n is a valid SCRAM nonce: printable
// ASCII except ',', at least 8 characters.
func printableNonce(n string) bool {
	if len(n) < 8 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// ClientFinal reads the client-final-message, checks its proof against
// each candidate (all of them, in constant time each) and returns the
// index of the one that matched and the server-final-message. ErrSCRAM if
// the message is malformed, binds a channel, or no candidate matches.
func (s *SCRAMServer) ClientFinal(msg []byte, candidates []SCRAMVerifier) (int, []byte, error) {
	if s.serverFirst == "" || s.done || len(msg) > MaxSCRAMMessage {
		return -1, nil, ErrSCRAM
	}
	s.done = true
	m := string(msg)
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return -1, nil, ErrSCRAM
	}
	withoutProof, proofB64 := m[:i], m[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) ||
		attrs[1] != "r="+s.nonce {
		return -1, nil, ErrSCRAM
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return -1, nil, ErrSCRAM
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	match := -1
	clientKey := make([]byte, sha256.Size)
	for k, v := range candidates {
		if len(v.StoredKey) != sha256.Size {
			continue
		}
		sig := hmacSHA256(v.StoredKey, authMessage)
		subtle.XORBytes(clientKey, proof, sig)
		stored := sha256.Sum256(clientKey)
		if subtle.ConstantTimeCompare(stored[:], v.StoredKey) == 1 && match < 0 {
			match = k
		}
	}
	clear(clientKey)
	if match < 0 {
		return -1, nil, ErrSCRAM
	}
	final := "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(candidates[match].ServerKey, authMessage))
	return match, []byte(final), nil
}
