package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// upstream is an authenticated upstream connection after its first
// ReadyForQuery, ready for the relay.
type upstream struct {
	conn     net.Conn
	r        *bufio.Reader // reads conn; may hold bytes already received
	pid      uint32
	secret   []byte
	params   map[string]string // ParameterStatus values
	txStatus byte

	// poolable: the connection may go back to the gateway's pool after
	// its session (pooling is on, and a TLS upstream has a
	// Target.UpstreamTLSKey); key is its login; reused: it came from the
	// pool.
	poolable bool
	key      poolKey
	reused   bool
	dialed   time.Time
	addr     string // as dialled
}

// Upstream connections without TLS whose password needs no SASLprep are
// opened by dialPlain below instead of pgconn: a SCRAM-SHA-256 login then
// derives its keys once per (password, salt, iteration count) instead of
// running 4096 PBKDF2 iterations per connection, which was ~45% of the
// gateway's CPU per new session. TLS upstreams keep pgconn (it also does
// channel binding).

// maxSCRAMIterations bounds the PBKDF2 work an upstream can ask for.
const maxSCRAMIterations = 10_000_000

// scramKeys are the derived keys of one (password, salt, iterations).
type scramKeys struct {
	clientKey, storedKey, serverKey []byte
}

// scramCache remembers derived SCRAM keys by a hash of their inputs. Keys
// are password equivalents for SCRAM, held in memory like the passwords
// themselves; the cache is bounded and cleared when full.
type scramCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]scramKeys
}

const scramCacheMax = 256

func (c *scramCache) keys(password string, salt []byte, iter int) scramKeys {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(password)))
	h.Write(n[:])
	h.Write([]byte(password))
	binary.BigEndian.PutUint64(n[:], uint64(iter))
	h.Write(n[:])
	h.Write(salt)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	c.mu.Lock()
	k, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return k
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		panic(err) // only for key lengths and counts never used here
	}
	k.clientKey = hmacSHA256(salted, []byte("Client Key"))
	sk := sha256.Sum256(k.clientKey)
	k.storedKey = sk[:]
	k.serverKey = hmacSHA256(salted, []byte("Server Key"))
	clear(salted)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= scramCacheMax {
		c.m = map[[sha256.Size]byte]scramKeys{}
	}
	c.m[id] = k
	c.mu.Unlock()
	return k
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// plainPassword reports whether password is printable ASCII, for which
// SASLprep (what PostgreSQL applies) changes nothing.
func plainPassword(password string) bool {
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// ErrCleartextRefused is the upstream login's error when the server asks
// for the password in cleartext over a connection that is not TLS with a
// verified certificate and the target does not allow it
// (Target.AllowCleartextPassword). The password was not sent.
var ErrCleartextRefused = errors.New("pgproxy: the upstream asked for a cleartext password over a connection without a verified TLS certificate; refused (use sslmode verify-full or verify-ca, or allow_cleartext_password)")

// dialPlain opens a plaintext upstream connection and logs in with the
// StartupMessage parameters params (user and database included). A
// cleartext password request is answered only with allowCleartext.
func (g *Gateway) dialPlain(ctx context.Context, addr, password string, params map[string]string, allowCleartext bool) (*upstream, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	up, err := g.login(conn, password, params, allowCleartext)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	up.dialed = time.Now()
	return up, nil
}

// login runs the startup phase on conn through the first ReadyForQuery.
// It sends password in cleartext only with allowCleartext; MD5 and SCRAM
// never disclose it.
func (g *Gateway) login(conn net.Conn, password string, params map[string]string, allowCleartext bool) (*upstream, error) {
	startup, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(startup); err != nil {
		return nil, err
	}
	up := &upstream{conn: conn, r: bufio.NewReaderSize(conn, readBufSize), params: map[string]string{}}
	var sc *scramLogin
	for {
		typ, body, err := readTyped(up.r, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("upstream startup: %w", err)
		}
		switch typ {
		case 'R':
			if len(body) < 4 {
				return nil, errProtocol
			}
			code, data := binary.BigEndian.Uint32(body), body[4:]
			var out []byte
			switch code {
			case 0: // AuthenticationOk
				if sc != nil && !sc.verified {
					return nil, errors.New("upstream: SCRAM login ended without the server's signature")
				}
				continue
			case 3: // cleartext password
				if !allowCleartext {
					return nil, ErrCleartextRefused
				}
				out, _ = (&pgproto3.PasswordMessage{Password: password}).Encode(nil)
			case 5: // MD5
				if len(data) != 4 {
					return nil, errProtocol
				}
				out, _ = (&pgproto3.PasswordMessage{Password: md5Password(password, params["user"], data)}).Encode(nil)
			case 10: // SASL
				if sc != nil {
					return nil, errProtocol
				}
				if !saslOffers(data, "SCRAM-SHA-256") {
					return nil, errors.New("upstream: server does not offer SCRAM-SHA-256")
				}
				sc = newSCRAMLogin()
				out, _ = (&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: sc.clientFirst()}).Encode(nil)
			case 11: // SASL continue
				if sc == nil || sc.final != nil {
					return nil, errProtocol
				}
				final, err := sc.serverFirst(data, &g.scram, password)
				if err != nil {
					return nil, err
				}
				out, _ = (&pgproto3.SASLResponse{Data: final}).Encode(nil)
			case 12: // SASL final
				if sc == nil || sc.final == nil || sc.verified {
					return nil, errProtocol
				}
				if err := sc.serverFinal(data); err != nil {
					return nil, err
				}
				continue
			default:
				return nil, fmt.Errorf("upstream: unsupported authentication request %d", code)
			}
			if _, err := conn.Write(out); err != nil {
				return nil, err
			}
		case 'E':
			sev, code, msg := errorFields(body)
			return nil, &pgconn.PgError{Severity: sev, Code: code, Message: msg}
		case 'S':
			k, rest, ok := cstring(body)
			if !ok {
				return nil, errProtocol
			}
			v, _, ok := cstring(rest)
			if !ok {
				return nil, errProtocol
			}
			up.params[string(k)] = string(v)
		case 'K':
			if len(body) < 8 || len(body) > 4+256 {
				return nil, errProtocol
			}
			up.pid = binary.BigEndian.Uint32(body)
			up.secret = bytes.Clone(body[4:])
		case 'N', 'v': // notice; NegotiateProtocolVersion (3.0 is what we asked for)
		case 'Z':
			if len(body) != 1 {
				return nil, errProtocol
			}
			up.txStatus = body[0]
			return up, nil
		default:
			return nil, errProtocol
		}
	}
}

// tooManyConnections reports whether err is the upstream refusing a login
// for lack of connection slots (53300: max_connections or the role's
// CONNECTION LIMIT), from either login path.
func tooManyConnections(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53300"
}

// md5Password is PostgreSQL's MD5 password response.
func md5Password(password, user string, salt []byte) string {
	inner := md5.Sum([]byte(password + user))
	h := md5.New()
	h.Write([]byte(hex.EncodeToString(inner[:])))
	h.Write(salt)
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

// saslOffers reports whether the NUL-separated mechanism list holds mech.
func saslOffers(list []byte, mech string) bool {
	for len(list) > 0 && list[0] != 0 {
		m, rest, ok := cstring(list)
		if !ok {
			return false
		}
		if string(m) == mech {
			return true
		}
		list = rest
	}
	return false
}

// scramLogin is the client side of one SCRAM-SHA-256 exchange without
// channel binding (RFC 5802, RFC 7677).
type scramLogin struct {
	nonce     string
	first     string // client-first-message-bare
	final     []byte // client-final-message, once sent
	authMsg   []byte
	serverKey []byte
	verified  bool
}

func newSCRAMLogin() *scramLogin {
	var b [18]byte
	_, _ = rand.Read(b[:])
	n := base64.RawStdEncoding.EncodeToString(b[:])
	return &scramLogin{nonce: n, first: "n=,r=" + n}
}

func (s *scramLogin) clientFirst() []byte { return []byte("n,," + s.first) }

// serverFirst checks the server-first-message and returns the
// client-final-message with the proof.
func (s *scramLogin) serverFirst(msg []byte, cache *scramCache, password string) ([]byte, error) {
	bad := errors.New("upstream: malformed SCRAM server-first-message")
	parts := bytes.Split(msg, []byte(","))
	if len(parts) < 3 || !bytes.HasPrefix(parts[0], []byte("r=")) || !bytes.HasPrefix(parts[1], []byte("s=")) || !bytes.HasPrefix(parts[2], []byte("i=")) {
		return nil, bad
	}
	nonce := parts[0][2:]
	if len(nonce) <= len(s.nonce) || !bytes.HasPrefix(nonce, []byte(s.nonce)) || bytes.ContainsAny(nonce, "\x00") {
		return nil, bad
	}
	salt, err := base64.StdEncoding.DecodeString(string(parts[1][2:]))
	if err != nil || len(salt) == 0 {
		return nil, bad
	}
	iter, err := strconv.Atoi(string(parts[2][2:]))
	if err != nil || iter < 1 || iter > maxSCRAMIterations {
		return nil, bad
	}
	k := cache.keys(password, salt, iter)
	withoutProof := append([]byte("c=biws,r="), nonce...)
	s.authMsg = bytes.Join([][]byte{[]byte(s.first), msg, withoutProof}, []byte(","))
	sig := hmacSHA256(k.storedKey, s.authMsg)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = k.clientKey[i] ^ sig[i]
	}
	s.serverKey = k.serverKey
	s.final = append(append(withoutProof, ",p="...), base64.StdEncoding.EncodeToString(proof)...)
	return s.final, nil
}

// serverFinal checks the server's signature: the server knew the
// password's verifier, so it is the real server.
func (s *scramLogin) serverFinal(msg []byte) error {
	if !bytes.HasPrefix(msg, []byte("v=")) {
		return errors.New("upstream: SCRAM login refused by the server")
	}
	want := base64.StdEncoding.EncodeToString(hmacSHA256(s.serverKey, s.authMsg))
	if !hmac.Equal(msg[2:], []byte(want)) {
		return errors.New("upstream: invalid SCRAM server signature")
	}
	s.verified = true
	return nil
}

// upstreamParams are the StartupMessage parameters of the upstream
// connection: the client's run-time parameters, the brokered user and
// database, and read-only mode for read-only targets.
func upstreamParams(t *Target, params map[string]string) map[string]string {
	p := make(map[string]string, len(params)+3)
	for k, v := range params {
		// checkStartupParams refused the rest; this is a second layer.
		if slices.Contains(StartupParameters, strings.ToLower(k)) {
			p[k] = v
		}
	}
	if t.ReadOnly {
		p["default_transaction_read_only"] = "on"
	}
	if t.ApplicationName != "" {
		for k := range p {
			if strings.EqualFold(k, "application_name") {
				delete(p, k)
			}
		}
		p["application_name"] = t.ApplicationName
	}
	return p
}

// connectUpstream opens the upstream connection with the brokered
// credential: itself for plaintext upstreams with an ASCII password
// (caching SCRAM keys), through pgconn otherwise. A kept connection with
// the same login is used first (see Target.UpstreamTLSKey for TLS).
func (g *Gateway) connectUpstream(ctx context.Context, t *Target, params map[string]string) (*upstream, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pw := t.UpstreamPassword.Reveal()
	p := upstreamParams(t, params)
	p["user"] = t.UpstreamUser
	if t.UpstreamDatabase != "" {
		p["database"] = t.UpstreamDatabase
	}
	poolable := g.pool != nil && (t.UpstreamTLS == nil || t.UpstreamTLSKey != "")
	var key poolKey
	if poolable {
		tlsKey := "" // a plaintext login never shares a key with a TLS one
		if t.UpstreamTLS != nil {
			tlsKey = "tls\x00" + t.UpstreamTLSKey
		}
		key = loginKey(t.UpstreamAddr, t.UpstreamUser, pw, tlsKey, p)
		if up := g.pool.get(key); up != nil {
			up.reused = true
			g.m.Upstream("reused")
			return up, nil
		}
	}
	var up *upstream
	var err error
	if t.UpstreamTLS == nil && plainPassword(pw) {
		up, err = g.dialRetry(t, func() (*upstream, error) {
			return g.dialPlain(ctx, t.UpstreamAddr, pw, p, t.AllowCleartextPassword)
		})
	} else {
		up, err = g.dialRetry(t, func() (*upstream, error) { return g.connectPgconn(ctx, t, params) })
	}
	if err != nil {
		return nil, err
	}
	up.poolable, up.key, up.addr = poolable, key, t.UpstreamAddr
	g.m.Upstream("new")
	return up, nil
}

// dialRetry opens an upstream connection with dial; when the upstream has no
// connection slot left and kept backends hold some, it gives those back
// and tries once more.
func (g *Gateway) dialRetry(t *Target, dial func() (*upstream, error)) (*upstream, error) {
	up, err := dial()
	if err != nil && tooManyConnections(err) && g.pool != nil && g.pool.drain(t.UpstreamAddr) > 0 {
		up, err = dial()
	}
	return up, err
}

// connectPgconn opens the upstream connection through pgconn and hands
// back the raw connection.
func (g *Gateway) connectPgconn(ctx context.Context, t *Target, params map[string]string) (*upstream, error) {
	host, portStr, err := net.SplitHostPort(t.UpstreamAddr)
	if err != nil {
		return nil, fmt.Errorf("upstream address: %w", err)
	}
	var port uint16
	if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil {
		return nil, fmt.Errorf("upstream port: %w", err)
	}
	c := g.base.Copy()
	c.Host, c.Port = host, port
	c.Database = t.UpstreamDatabase
	c.User = t.UpstreamUser
	c.Password = t.UpstreamPassword.Reveal()
	c.TLSConfig = nil
	if t.UpstreamTLS != nil {
		c.TLSConfig = t.UpstreamTLS.Clone()
		if c.TLSConfig.ServerName == "" {
			c.TLSConfig.ServerName = host
		}
	}
	c.Fallbacks = nil
	// libpq's require_auth: no cleartext password unless the server's
	// certificate was verified or the resource allows it.
	allowCleartext := t.AllowCleartextPassword || TLSVerifies(t.UpstreamTLS)
	c.RequireAuth = ""
	if !allowCleartext {
		c.RequireAuth = "!password"
	}
	c.ConnectTimeout = 15 * time.Second
	c.RuntimeParams = upstreamParams(t, params)
	// pgconn reads through a background reader that may still have one
	// Read pending on the socket after the handshake (it starts when a
	// write is slow). Reading through that same reader afterwards keeps
	// the bytes in order instead of letting the stale Read steal them.
	var reader io.Reader
	c.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		reader = r
		return pgproto3.NewFrontend(r, w)
	}
	dialed := time.Now()
	pc, err := pgconn.ConnectConfig(ctx, c)
	if err != nil {
		if !allowCleartext && strings.Contains(err.Error(), "require_auth check failed") {
			// the only requirement set is "!password"
			return nil, fmt.Errorf("%w (%v)", ErrCleartextRefused, err)
		}
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	if reader == nil {
		reader = hc.Conn
	}
	return &upstream{conn: hc.Conn, r: bufio.NewReaderSize(reader, readBufSize), pid: hc.PID, secret: hc.SecretKey,
		params: hc.ParameterStatuses, txStatus: hc.TxStatus, dialed: dialed}, nil
}

// sendCancel sends a CancelRequest to the upstream (over TLS when the
// target's upstream uses TLS).
func sendCancel(ctx context.Context, t *Target, pid uint32, key []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.UpstreamAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if t.UpstreamTLS != nil {
		req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
		if _, err := c.Write(req); err != nil {
			return err
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return err
		}
		if b[0] != 'S' {
			return errors.New("upstream refused TLS for the cancel request")
		}
		cfg := t.UpstreamTLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.UpstreamAddr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		c = tc
	}
	msg, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: key}).Encode(nil)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	// The server closes the connection once it has passed the request on
	// to the backend; only then is the cancel surely delivered.
	_, err = io.Copy(io.Discard, c)
	return err
}
