package mysqlwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// ClientConfig is how the gateway logs in to an upstream server.
type ClientConfig struct {
	User     string
	Password []byte // never logged; empty for an account without one
	Database string // sent with CapConnectWithDB when set
	// TLS, when set, makes the upstream leg TLS: the server must offer
	// CapSSL (no plaintext fallback) and the config is used as given —
	// set RootCAs to the resource's CA and ServerName (Dial fills it from
	// the address when empty) for verify-full.
	TLS *tls.Config
	// Capabilities are the relay-relevant flags (RelayCapabilities) the
	// client negotiated with the gateway; Handshake adds the ones
	// authentication and transport need and fails if the server lacks a
	// relay-relevant one.
	Capabilities Capability
	Charset      uint8  // collation id; 0 means DefaultCharset
	MaxPacket    uint32 // 0 means 16 MiB
	Attrs        []Attr // connect attributes sent upstream (program_name=airlock, …)
}

// ClientConn is an authenticated upstream connection, ready for raw
// relay: its Conn holds what it has buffered.
type ClientConn struct {
	Net          net.Conn // the *tls.Conn when TLS was negotiated
	Conn         *Conn
	Server       *ServerHandshake
	Capabilities Capability // in force on this connection
	AuthPlugin   string     // the method the server authenticated with
	TLS          bool
}

// ErrAuthRefused wraps authentication steps the client refuses to take:
// a cleartext password or a caching_sha2_password full authentication
// over a connection that is not TLS, an unsupported method.
var ErrAuthRefused = errors.New("mysqlwire: upstream authentication refused")

// Dial connects to addr and runs Handshake. The context bounds the
// connection and the handshake.
func Dial(ctx context.Context, network, addr string, cfg ClientConfig) (*ClientConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil && cfg.TLS.ServerName == "" {
		c := cfg.TLS.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		}
		cfg.TLS = c
	}
	cc, err := Handshake(ctx, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return cc, nil
}

// Handshake logs in on nc: it reads the server's HandshakeV10, upgrades
// to TLS when cfg.TLS is set, answers with a HandshakeResponse41 for the
// server's method (mysql_native_password, caching_sha2_password), follows
// an AuthSwitchRequest, and reads the final OK. Errors from the server are
// *ServerError. A cleartext password (mysql_clear_password, or
// caching_sha2_password full authentication) is sent only inside TLS;
// otherwise ErrAuthRefused. The context's deadline, if any, bounds the
// handshake; nc's deadline is cleared after.
func Handshake(ctx context.Context, nc net.Conn, cfg ClientConfig) (*ClientConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := NewConn(nc)
	c.MaxPacket = PreAuthMaxPacket
	p, err := c.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("read server handshake: %w", err)
	}
	sh, err := ParseHandshakeV10(p)
	if err != nil {
		return nil, fmt.Errorf("server handshake: %w", err)
	}
	need := CapProtocol41 | CapSecureConnection | CapPluginAuth
	if !sh.Capabilities.Has(need) {
		return nil, fmt.Errorf("%w: server lacks %s", ErrAuthRefused, need&^sh.Capabilities)
	}
	relay := cfg.Capabilities & RelayCapabilities
	if miss := relay &^ sh.Capabilities; miss != 0 {
		return nil, fmt.Errorf("mysqlwire: upstream server lacks capabilities the client negotiated: %s", miss)
	}
	caps := relay | CapLongPassword | need | CapPluginAuthLenencData
	if cfg.Database != "" {
		caps |= CapConnectWithDB
	}
	if len(cfg.Attrs) > 0 {
		caps |= CapConnectAttrs
	}
	caps &= sh.Capabilities
	resp := &HandshakeResponse{Capabilities: caps, MaxPacket: cfg.MaxPacket, Charset: cfg.Charset,
		User: cfg.User, Database: cfg.Database, Attrs: cfg.Attrs}
	if resp.Charset == 0 {
		resp.Charset = DefaultCharset
	}
	if resp.MaxPacket == 0 {
		resp.MaxPacket = MaxPayload + 1
	}
	var conn net.Conn = nc
	if cfg.TLS != nil {
		if !sh.Capabilities.Has(CapSSL) {
			return nil, fmt.Errorf("%w: TLS required but the server does not offer it", ErrAuthRefused)
		}
		resp.Capabilities |= CapSSL
		if err := c.WritePacket(resp.AppendSSLRequest(nil)); err != nil {
			return nil, err
		}
		tc, err := c.StartTLS(ctx, nc, cfg.TLS, false)
		if err != nil {
			return nil, fmt.Errorf("upstream TLS: %w", err)
		}
		conn = tc
	}
	tlsOn := cfg.TLS != nil
	plugin := sh.AuthPlugin
	if plugin != CachingSHA2 {
		plugin = NativePassword // the server switches us if the account uses another
	}
	resp.AuthPlugin = plugin
	resp.AuthResponse = authResponse(plugin, cfg.Password, sh.Scramble)
	if err := c.WritePacket(resp.Append(nil)); err != nil {
		return nil, err
	}
	for range 8 {
		p, err := c.ReadPacket()
		if err != nil {
			return nil, fmt.Errorf("read auth result: %w", err)
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("%w: empty auth packet", ErrMalformed)
		}
		switch p[0] {
		case 0x00:
			c.MaxPacket = 0
			c.ResetSeq()
			return &ClientConn{Net: conn, Conn: c, Server: sh, Capabilities: resp.Capabilities,
				AuthPlugin: plugin, TLS: tlsOn}, nil
		case 0xff:
			e, err := ParseErr(p)
			if err != nil {
				return nil, err
			}
			return nil, e
		case 0xfe:
			var data []byte
			plugin, data, err = ParseAuthSwitchRequest(p)
			if err != nil {
				return nil, err
			}
			switch plugin {
			case NativePassword, CachingSHA2:

				err = c.WritePacket(authResponse(plugin, cfg.Password, data))
			case ClearPassword:
				if !tlsOn {
					return nil, fmt.Errorf("%w: the server asked for a cleartext password over a connection without TLS", ErrAuthRefused)
				}
				err = c.WritePacket(AppendClearPassword(nil, cfg.Password))
			default:
				return nil, fmt.Errorf("%w: unsupported method %q", ErrAuthRefused, plugin)
			}
			if err != nil {
				return nil, err
			}
		case 0x01:
			if plugin != CachingSHA2 || len(p) != 2 {
				return nil, fmt.Errorf("%w: unexpected AuthMoreData for %s", ErrAuthRefused, plugin)
			}
			switch p[1] {
			case CachingSHA2FastAuthOK: // the OK follows
			case CachingSHA2PerformFull:
				if !tlsOn {
					return nil, fmt.Errorf("%w: caching_sha2_password full authentication needs TLS (the password is not sent encrypted to an unpinned RSA key)", ErrAuthRefused)
				}
				if err := c.WritePacket(AppendClearPassword(nil, cfg.Password)); err != nil {
					return nil, err
				}
			default:
				return nil, fmt.Errorf("%w: caching_sha2_password status %#x", ErrMalformed, p[1])
			}
		default:
			return nil, fmt.Errorf("%w: auth packet %#x", ErrMalformed, p[0])
		}
	}
	return nil, fmt.Errorf("%w: too many authentication rounds", ErrAuthRefused)
}

func authResponse(plugin string, password, scramble []byte) []byte {
	if plugin == CachingSHA2 {
		return CachingSHA2Scramble(password, scramble)
	}
	return NativePasswordScramble(password, scramble)
}
