package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/mysqlwire"
)

// localMySQLConn serves one local MySQL client of `airlock connect`: it
// takes the client's handshake (any user and password: the listener is
// on loopback and the token is what opens the database), opens the gateway
// over verified TLS with a fresh connect token, and then relays bytes.
// The database the client names, if any, is asked for as RESOURCE/DB.
func localMySQLConn(c *cli, conn net.Conn, resource, accessLevel string) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	mc := mysqlwire.NewConn(conn)
	mc.MaxPacket = mysqlwire.PreAuthMaxPacket
	fail := func(msg string) {
		mc.WritePacket((&mysqlwire.ServerError{Code: mysqlwire.ErAccessDenied, State: "28000", Message: "airlock: " + msg}).Append(nil))
	}
	scramble, err := mysqlwire.NewScramble()
	if err != nil {
		return
	}
	hs := &mysqlwire.ServerHandshake{ServerVersion: "5.5.5-10.11.0-Airlock-local", ConnectionID: 1, Scramble: scramble,
		Capabilities: mysqlwire.ServerCapabilities, Charset: mysqlwire.DefaultCharset, Status: mysqlwire.StatusAutocommit, AuthPlugin: mysqlwire.NativePassword}
	if mc.WritePacket(hs.Append(nil)) != nil {
		return
	}
	p, err := mc.ReadPacket()
	if err != nil {
		return
	}
	if mysqlwire.IsSSLRequest(p) {
		fail("connect to the local listener without TLS (it is loopback only; the hop to the gateway is TLS)")
		return
	}
	hr, err := mysqlwire.ParseHandshakeResponse(p)
	if err != nil {
		return
	}
	caps, err := mysqlwire.Negotiate(hs.Capabilities, hr.Capabilities)
	if err != nil {
		return
	}
	t, info, err := mintTokenFor(c, resource, accessLevel, "MySQL", "--mysql-addr", func(i *api.GatewayInfo) string { return i.MySQLAddr })
	if err != nil {
		fail(airlock.ErrorMessage(err))
		return
	}
	db := t.Resource
	if hr.Database != "" && hr.Database != t.Resource {
		db += "/" + hr.Database
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.TLSCA))
	host, _, _ := net.SplitHostPort(info.MySQLAddr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	gw, err := mysqlwire.Dial(ctx, "tcp", info.MySQLAddr, mysqlwire.ClientConfig{User: t.User, Password: []byte(t.Token), Database: db,
		TLS: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, Capabilities: caps & mysqlwire.RelayCapabilities, Charset: hr.Charset})
	if err != nil {
		var se *mysqlwire.ServerError
		if errors.As(err, &se) {
			mc.WritePacket(se.Append(nil))
		} else {
			fail("cannot open the gateway: " + err.Error())
		}
		return
	}
	defer gw.Net.Close()
	if mc.WritePacket(mysqlwire.AppendOK(nil, mysqlwire.OK{Status: mysqlwire.StatusAutocommit})) != nil {
		return
	}
	conn.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { io.Copy(gw.Net, mc.Reader()); gw.Net.Close(); done <- struct{}{} }()
	go func() { io.Copy(conn, gw.Conn.Reader()); conn.Close(); done <- struct{}{} }()
	<-done
}
