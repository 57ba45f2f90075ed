// Command tcprelay is the baseline of bench/pgbench.sh and bench/mysql.sh:
// a plain TCP relay (two io.Copy per connection) with no protocol
// awareness.
//
// With -mysql-tls it is instead the like-for-like baseline of a MySQL
// gateway that must read the protocol: it ends the client's TLS and opens
// its own to the server, as the gateway does, and copies the plaintext
// between them. It relays the server's greeting and the client's
// SSLRequest unchanged, then does TLS on both sides (its certificate from
// -tls-cert/-tls-key; the server's checked against -upstream-ca and
// -upstream-name); the client's login then goes through to the server as
// it is (the relay knows no passwords). A client that does not ask for TLS
// is relayed in plaintext.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/airlockhq/airlock/internal/mysqlwire"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6433", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:5432", "upstream host:port")
	mysqlTLS := flag.Bool("mysql-tls", false, "end the client's MySQL TLS and open the relay's own to the server")
	certFile := flag.String("tls-cert", "", "with -mysql-tls: the relay's certificate (PEM)")
	keyFile := flag.String("tls-key", "", "with -mysql-tls: its key (PEM)")
	caFile := flag.String("upstream-ca", "", "with -mysql-tls: the CA the server's certificate is checked against (PEM)")
	upstreamName := flag.String("upstream-name", "127.0.0.1", "with -mysql-tls: the name the server's certificate must carry")
	flag.Parse()
	var mt *mysqlTLSConfig
	if *mysqlTLS {
		var err error
		if mt, err = loadMySQLTLS(*certFile, *keyFile, *caFile, *upstreamName); err != nil {
			fmt.Fprintln(os.Stderr, "tcprelay:", err)
			os.Exit(2)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcprelay:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcprelay:", err)
			os.Exit(1)
		}
		go relay(c, *upstream, mt)
	}
}

func relay(c net.Conn, upstream string, mt *mysqlTLSConfig) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	var client, server io.ReadWriter = c, u
	if mt != nil {
		tc, tu, err := mt.start(c, u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcprelay:", err)
			return
		}
		if tc != nil {
			defer tc.Close()
			defer tu.Close()
			client, server = tc, tu
		}
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(server, client)
		closeWrite(server)
		close(done)
	}()
	_, _ = io.Copy(client, server)
	closeWrite(client)
	<-done
}

func closeWrite(c io.ReadWriter) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// mysqlTLSConfig is -mysql-tls's two TLS configurations.
type mysqlTLSConfig struct {
	server, client *tls.Config
}

func loadMySQLTLS(certFile, keyFile, caFile, name string) (*mysqlTLSConfig, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-upstream-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("-upstream-ca: no certificate")
	}
	return &mysqlTLSConfig{server: &tls.Config{Certificates: []tls.Certificate{cert}},
		client: &tls.Config{RootCAs: roots, ServerName: name}}, nil
}

// start relays the greeting and the client's first packet; when that is
// an SSLRequest it returns the two TLS connections after their handshakes
// (nil, nil when the client goes on in plaintext).
func (mt *mysqlTLSConfig) start(c, u net.Conn) (*tls.Conn, *tls.Conn, error) {
	greeting, err := readPacket(u)
	if err != nil {
		return nil, nil, fmt.Errorf("greeting: %w", err)
	}
	if _, err := c.Write(greeting); err != nil {
		return nil, nil, err
	}
	first, err := readPacket(c)
	if err != nil {
		return nil, nil, fmt.Errorf("client's first packet: %w", err)
	}
	if _, err := u.Write(first); err != nil {
		return nil, nil, err
	}
	if len(first) != 4+32 || !mysqlwire.Capability(binary.LittleEndian.Uint32(first[4:8])).Has(mysqlwire.CapSSL) {
		return nil, nil, nil // a login in plaintext: relayed as it is
	}
	tc, tu := tls.Server(c, mt.server), tls.Client(u, mt.client)
	errc := make(chan error, 1)
	go func() { errc <- tu.Handshake() }()
	if err := tc.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("client TLS: %w", err)
	}
	if err := <-errc; err != nil {
		return nil, nil, fmt.Errorf("server TLS: %w", err)
	}
	return tc, tu, nil
}

// readPacket reads one MySQL packet, header and payload, exactly (never
// past it: a TLS handshake may follow).
func readPacket(r io.Reader) ([]byte, error) {
	p := make([]byte, 4)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	h, err := mysqlwire.ParseHeader(p)
	if err != nil {
		return nil, err
	}
	p = append(p, make([]byte, h.Length)...)
	_, err = io.ReadFull(r, p[4:])
	return p, err
}
