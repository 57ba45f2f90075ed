package pgproxy

import (
	"context"
	"errors"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/secrets"
	"github.com/jackc/pgx/v5/pgproto3"
)

// SCRAMAuthenticator is an Authenticator that can also check a
// SCRAM-SHA-256 proof that the client holds a connect token. The gateway
// uses it for plaintext clients on loopback (Config.AllowLoopbackPlaintext)
// so that the token never crosses an unencrypted connection; inside TLS the
// token is sent as the password.
type SCRAMAuthenticator interface {
	Authenticator
	// SCRAMCandidates returns the salt, iteration count and verifiers of
	// the tokens req.User may hold for req.Database (req.Token is empty).
	SCRAMCandidates(ctx context.Context, req AuthRequest) (*SCRAMCandidates, error)
	// AuthenticateSCRAM authenticates with the candidate at index match,
	// or refuses (and audits) when match is negative.
	AuthenticateSCRAM(ctx context.Context, req AuthRequest, c *SCRAMCandidates, match int) (*Target, error)
}

// SCRAMCandidates are what one SCRAM exchange checks the proof against.
type SCRAMCandidates struct {
	Salt       []byte
	Iterations int
	Verifiers  []auth.SCRAMVerifier
	// State is the authenticator's own, handed back to AuthenticateSCRAM.
	State any
}

// scramMechanism is the only SASL mechanism offered: channel binding
// (SCRAM-SHA-256-PLUS) needs TLS, and TLS clients send the token itself.
const scramMechanism = "SCRAM-SHA-256"

// scramAuthenticate runs the SASL SCRAM-SHA-256 exchange with the client,
// after writing prefix (e.g. NegotiateProtocolVersion). It returns the
// target and the AuthenticationSASLFinal message to send before
// AuthenticationOk, or a nil target once it has answered the client with
// a FATAL error.
func (g *Gateway) scramAuthenticate(ctx context.Context, cc *clientConn, sa SCRAMAuthenticator, req AuthRequest, prefix []byte) (*Target, []byte, error) {
	cands, err := sa.SCRAMCandidates(ctx, req)
	if err != nil || cands == nil {
		g.log.Warn("pgproxy: SCRAM candidates", "user", req.User, "database", req.Database, "err", err)
		if airlock.IsCode(err, airlock.EUNAVAILABLE) {
			g.m.Refused("unavailable")
			writeFatal(cc, codeCannotConnect, msgUnavailable)
		} else {
			writeFatal(cc, codeConnFailure, msgUpstreamError)
		}
		return nil, nil, nil
	}
	out, _ := (&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}).Encode(prefix)
	if _, err := cc.Write(out); err != nil {
		return nil, nil, err
	}
	limit := min(MaxStartupMessageSize, auth.MaxSCRAMMessage+64)
	typ, body, err := readTyped(cc.r, limit)
	if err != nil || typ != 'p' {
		if err == nil {
			writeFatal(cc, codeProtocol, "airlock: expected a SASLInitialResponse message")
		}
		return nil, nil, err
	}
	var first pgproto3.SASLInitialResponse
	if err := first.Decode(body); err != nil || first.AuthMechanism != scramMechanism {
		writeFatal(cc, codeInvalidAuth, "airlock: only SASL mechanism "+scramMechanism+" is offered")
		return nil, nil, nil
	}
	srv := auth.NewSCRAMServer(cands.Salt, cands.Iterations)
	serverFirst, err := srv.ClientFirst(first.Data)
	if err != nil {
		writeFatal(cc, codeInvalidAuth, "airlock: malformed SCRAM client-first message")
		return nil, nil, nil
	}
	out, _ = (&pgproto3.AuthenticationSASLContinue{Data: serverFirst}).Encode(nil)
	if _, err := cc.Write(out); err != nil {
		return nil, nil, err
	}
	typ, body, err = readTyped(cc.r, limit)
	if err != nil || typ != 'p' {
		if err == nil {
			writeFatal(cc, codeProtocol, "airlock: expected a SASLResponse message")
		}
		return nil, nil, err
	}
	var resp pgproto3.SASLResponse
	if err := resp.Decode(body); err != nil {
		writeFatal(cc, codeProtocol, "airlock: malformed SASLResponse message")
		return nil, nil, nil
	}
	match, serverFinal, _ := srv.ClientFinal(resp.Data, cands.Verifiers)
	t, err := sa.AuthenticateSCRAM(ctx, req, cands, match)
	if err != nil || t == nil {
		g.authFailed(cc, req, "SCRAM authentication failed", err)
		return nil, nil, nil
	}
	final, _ := (&pgproto3.AuthenticationSASLFinal{Data: serverFinal}).Encode(nil)
	return t, final, nil
}

// passwordAuthenticate asks for the connect token as a cleartext password
// (only inside TLS, or on loopback when the Authenticator cannot do SCRAM),
// after writing prefix. It returns the target, or nil once it has answered
// the client with a FATAL error.
func (g *Gateway) passwordAuthenticate(ctx context.Context, cc *clientConn, req AuthRequest, prefix []byte) (*Target, error) {
	out, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(prefix)
	if _, err := cc.Write(out); err != nil {
		return nil, err
	}
	typ, pw, err := readTyped(cc.r, min(MaxStartupMessageSize, g.cfg.MaxMessageSize))
	if err != nil || typ != 'p' {
		if err == nil {
			writeFatal(cc, codeProtocol, "airlock: expected a password message")
		}
		return nil, err
	}
	tok, _, ok := cstring(pw)
	if !ok {
		writeFatal(cc, codeProtocol, "airlock: malformed password message")
		return nil, nil
	}
	req.Token = secretOf(tok)
	t, err := g.cfg.Auth.Authenticate(ctx, req)
	clear(tok)
	clear(pw)
	if err != nil || t == nil {
		g.authFailed(cc, req, "authentication failed", err)
		return nil, nil
	}
	return t, nil
}

// authFailed answers a client whose token the Authenticator did not
// accept: with the Refusal's FATAL when it returned one; FATAL 57P03 saying
// the store is unavailable when the Authenticator could not check the
// token (EUNAVAILABLE: it answers so for valid and invalid tokens alike);
// and otherwise the one FATAL 28P01 for every invalid token, whatever the
// reason.
func (g *Gateway) authFailed(cc *clientConn, req AuthRequest, what string, err error) {
	var r *Refusal
	if errors.As(err, &r) {
		g.m.Refused("refused")
		g.log.Info("pgproxy: connection refused", "user", req.User, "database", req.Database, "source", req.SourceAddr, "reason", r.Message)
		code := r.Code
		if code == "" {
			code = codeInsufficientPrivilege
		}
		writeFatal(cc, code, r.Message)
		return
	}
	if airlock.IsCode(err, airlock.EUNAVAILABLE) {
		g.m.Refused("unavailable")
		g.log.Warn("pgproxy: "+what+": store unavailable", "user", req.User, "database", req.Database, "source", req.SourceAddr, "err", err)
		writeFatal(cc, codeCannotConnect, msgUnavailable)
		return
	}
	g.m.Refused("auth_failed")
	g.log.Info("pgproxy: "+what, "user", req.User, "database", req.Database, "source", req.SourceAddr, "err", err)
	writeFatal(cc, codeInvalidPassword, msgInvalidToken)
}

func secretOf(b []byte) secrets.Secret { return secrets.Secret(string(b)) }
