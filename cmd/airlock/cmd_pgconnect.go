package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
)

func newConnectCmd() *cobra.Command {
	var port int
	var accessLevel string
	cmd := &cobra.Command{Use: "connect RESOURCE [--port N]", Short: "Run a local PostgreSQL or MySQL listener that opens each connection with a fresh connect token",
		Long: `Run a local listener for GUI clients and ORMs. Point the client at 127.0.0.1:PORT with any user,
password and database: each incoming connection gets a fresh single-use connect token and is
carried to the gateway over TLS. Your grant and MFA freshness are checked for every connection.`,
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			// Fail early when there is no grant, before listening.
			t, info, err := mintTokenFor(c, args[0], accessLevel, "", "", func(*api.GatewayInfo) string { return "checked below" })
			if err != nil {
				return err
			}
			mysql := t.Kind == airlock.KindMySQL
			switch {
			case mysql && info.MySQLAddr == "":
				return errors.New("the server's MySQL gateway is disabled (--mysql-addr)")
			case !mysql && info.PGAddr == "":
				return errors.New("the server's PostgreSQL gateway is disabled (--pg-addr)")
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listen on 127.0.0.1:%d: %v; pick another --port", port, err)
			}
			defer ln.Close()
			if mysql {
				fmt.Fprintf(c.out(), "Listening on %s for %s; connect with e.g. mariadb --host 127.0.0.1 --port %d. Ctrl-C to stop.\n",
					ln.Addr(), args[0], ln.Addr().(*net.TCPAddr).Port)
			} else {
				fmt.Fprintf(c.out(), "Listening on %s for %s; connect with e.g. psql \"host=127.0.0.1 port=%d dbname=%s\". Ctrl-C to stop.\n",
					ln.Addr(), args[0], ln.Addr().(*net.TCPAddr).Port, args[0])
			}
			go func() { <-c.ctx().Done(); ln.Close() }()
			for {
				conn, err := ln.Accept()
				if err != nil {
					return nil
				}
				if mysql {
					go localMySQLConn(c, conn, args[0], accessLevel)
				} else {
					go localPGConn(c, conn, args[0], accessLevel)
				}
			}
		}}
	cmd.Flags().IntVar(&port, "port", 0, "local port (0 = pick one)")
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level")
	return cmd
}

func pgFatal(w io.Writer, msg string) {
	b, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28000", Message: "airlock: " + msg}).Encode(nil)
	w.Write(b)
}

// localPGConn serves one local client: it takes the client's startup,
// opens the gateway with a fresh token and then relays bytes.
func localPGConn(c *cli, conn net.Conn, resource, accessLevel string) {
	defer conn.Close()
	be := pgproto3.NewBackend(conn, conn)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			conn.Write([]byte{'N'}) // loopback only; the hop to the gateway is TLS
		case *pgproto3.StartupMessage:
			startup = m
		case *pgproto3.CancelRequest:
			return // cancel keys belong to the gateway session; not forwarded from here
		default:
			return
		}
	}
	t, info, err := mintToken(c, resource, accessLevel)
	if err != nil {
		pgFatal(conn, airlock.ErrorMessage(err))
		return
	}
	gw, err := net.Dial("tcp", info.PGAddr)
	if err != nil {
		pgFatal(conn, "cannot reach the gateway: "+err.Error())
		return
	}
	defer gw.Close()
	if _, err := gw.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47}); err != nil { // SSLRequest
		return
	}
	var resp [1]byte
	if _, err := io.ReadFull(gw, resp[:]); err != nil || resp[0] != 'S' {
		pgFatal(conn, "the gateway does not offer TLS")
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	host, _, _ := net.SplitHostPort(info.PGAddr)
	tc := tls.Client(gw, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		pgFatal(conn, "TLS to the gateway failed: "+err.Error())
		return
	}
	params := map[string]string{"user": t.User, "database": t.Resource}
	for k, v := range startup.Parameters {
		if k != "user" && k != "database" {
			params[k] = v
		}
	}
	fe := pgproto3.NewFrontend(tc, tc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		return
	}
	msg, err := fe.Receive()
	if err != nil {
		return
	}
	switch m := msg.(type) {
	case *pgproto3.AuthenticationCleartextPassword:
		fe.Send(&pgproto3.PasswordMessage{Password: t.Token})
		if err := fe.Flush(); err != nil {
			return
		}
	case *pgproto3.ErrorResponse:
		pgFatal(conn, m.Message)
		return
	default:
		pgFatal(conn, "unexpected gateway authentication request")
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(tc, conn); done <- struct{}{} }()
	go func() { io.Copy(conn, tc); done <- struct{}{} }()
	<-done
}
