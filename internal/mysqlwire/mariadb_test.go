package mysqlwire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

// mariaDB is a throwaway MariaDB server for this package's tests (until
// internal/testenv has one): its own data directory, TCP on 127.0.0.1,
// TLS with a CA made for it, run as the mysql user when the tests run as
// root.
// mariaDB is the test server (internal/testenv's) with this package's
// database and accounts: gw (native password) and gwtls (REQUIRE SSL).
type mariaDB struct {
	addr      string
	caPEM     []byte
	app       string // the database
	gw, gwtls string // account names
}

func startMariaDB(t *testing.T) *mariaDB {
	t.Helper()
	m := testenv.MariaDB(t)
	db := &mariaDB{addr: m.Addr, caPEM: m.CAPEM, app: m.NewDatabase(t)}
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	db.gw, db.gwtls = "gw"+sfx, "gwtls"+sfx
	m.CreateUser(t, db.gw, "gw-pass", "ALL ON `"+db.app+"`.*")
	m.CreateUser(t, db.gwtls, "tls-pass", "ALL ON `"+db.app+"`.*")
	m.Exec(t, "ALTER USER '"+db.gwtls+"'@'%' REQUIRE SSL")
	m.Exec(t, "CREATE TABLE `"+db.app+"`.t (a INT)")
	return db
}

func TestMain(m *testing.M) { testenv.RunMain(m) }

// testCerts makes a CA and a server certificate for localhost/127.0.0.1.
func testCerts() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mysqlwire test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func roots(t *testing.T, caPEM []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad CA PEM")
	}
	return p
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// roundTrip sends one command on an authenticated upstream and follows
// its response with a ResponseTracker, as a gateway relaying it would;
// rows holds the first value of each text row, from the packet prefix.
func roundTrip(t *testing.T, cc *ClientConn, cmd []byte) (Result, []string) {
	t.Helper()
	tr := NewResponseTracker(cc.Capabilities)
	cc.Conn.ResetSeq()
	if err := cc.Conn.WritePacket(cmd); err != nil {
		t.Fatal(err)
	}
	ok, err := tr.Begin(cmd, cc.Conn.Seq())
	if err != nil || !ok {
		t.Fatalf("begin: %v %v", ok, err)
	}
	var rows []string
	for {
		h, prefix, err := cc.Conn.Next()
		if err != nil {
			t.Fatal(err)
		}
		before := tr.Result().Rows
		step, err := tr.Feed(h, prefix)
		if err != nil {
			t.Fatalf("feed %x: %v", prefix, err)
		}
		if tr.Result().Rows > before && Command(cmd[0]) == ComQuery {
			r := reader{b: prefix}
			rows = append(rows, string(r.lenencBytes()))
		}
		if err := cc.Conn.Discard(); err != nil {
			t.Fatal(err)
		}
		switch step {
		case StepDone:
			return tr.Result(), rows
		case StepLocalInfile:
			// Refuse: an empty packet tells the server there is no data.
			cc.Conn.SetSeq(h.Seq + 1)
			if err := cc.Conn.WritePacket(nil); err != nil {
				t.Fatal(err)
			}
			if err := tr.InfileSent(1); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestMariaDBUpstream(t *testing.T) {
	db := startMariaDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, caps := range []Capability{
		CapDeprecateEOF | CapMultiStatements | CapMultiResults | CapLocalFiles,
		CapMultiStatements | CapMultiResults | CapLocalFiles, // classic EOF packets
	} {
		t.Run("native/deprecate-eof="+strconv.FormatBool(caps.Has(CapDeprecateEOF)), func(t *testing.T) {
			cc, err := Dial(ctx, "tcp", db.addr, ClientConfig{User: db.gw, Password: []byte("gw-pass"),
				Database: db.app, Capabilities: caps, Attrs: []Attr{{"program_name", "airlock-test"}}})
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Net.Close()
			if cc.AuthPlugin != NativePassword || cc.TLS || cc.Capabilities&RelayCapabilities != caps {
				t.Fatalf("plugin %s tls %v caps %s", cc.AuthPlugin, cc.TLS, cc.Capabilities)
			}
			if res, _ := roundTrip(t, cc, AppendCommand(nil, ComQuery, "DELETE FROM t")); res.Err != nil {
				t.Fatal(res.Err)
			}
			res, rows := roundTrip(t, cc, AppendCommand(nil, ComQuery, "SELECT 1"))
			if res.Rows != 1 || res.Err != nil || len(rows) != 1 || rows[0] != "1" {
				t.Fatalf("SELECT 1: %+v %q", res, rows)
			}
			// The hash NativePasswordVerify needs is the one the server keeps.
			h := NativePasswordHash([]byte("gw-pass"))
			_, rows = roundTrip(t, cc, AppendCommand(nil, ComQuery, "SELECT PASSWORD('gw-pass')"))
			if want := fmt.Sprintf("*%X", h[:]); rows[0] != want {
				t.Fatalf("PASSWORD() = %s, NativePasswordHash = %s", rows[0], want)
			}
			res, _ = roundTrip(t, cc, AppendCommand(nil, ComQuery, "SELECT * FROM nope"))
			if res.Err == nil || res.Err.Code != 1146 || res.Err.State != "42S02" {
				t.Fatalf("error: %+v", res)
			}
			res, rows = roundTrip(t, cc, AppendCommand(nil, ComQuery, "SELECT 1; INSERT INTO t VALUES (1),(2); SELECT 'b' UNION SELECT 'c'"))
			if res.ResultSets != 2 || res.Rows != 3 || res.AffectedRows != 2 || fmt.Sprint(rows) != "[1 b c]" {
				t.Fatalf("multi: %+v %q", res, rows)
			}
			res, _ = roundTrip(t, cc, AppendCommand(nil, ComQuery, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"))
			if res.LocalInfile != "/etc/passwd" || res.Err != nil || res.AffectedRows != 0 {
				t.Fatalf("local infile: %+v", res)
			}
			res, _ = roundTrip(t, cc, AppendCommand(nil, ComStmtPrepare, "SELECT a + ? FROM t WHERE a > ?"))
			if res.Err != nil || res.NumParams != 2 || res.NumColumns != 1 || res.StmtID == 0 {
				t.Fatalf("prepare: %+v", res)
			}
			exec := []byte{byte(ComStmtExecute)}
			exec = append(exec, byte(res.StmtID), byte(res.StmtID>>8), byte(res.StmtID>>16), byte(res.StmtID>>24), 0, 1, 0, 0, 0)
			exec = append(exec, 0, 1, byte(TypeLongLong), 0, byte(TypeLongLong), 0)
			exec = append(exec, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
			x, err := ParseStmtExecute(exec, ExecuteOptions{NumParams: 2, DecodeValues: true})
			if err != nil || x.Params[0].Text != "10" || x.Params[1].Text != "0" {
				t.Fatalf("parse own execute: %+v %v", x, err)
			}
			er, _ := roundTrip(t, cc, exec)
			if er.Err != nil || er.Rows != 2 {
				t.Fatalf("execute: %+v", er)
			}
			cc.Conn.ResetSeq()
			if err := cc.Conn.WritePacket([]byte{byte(ComStmtClose), byte(res.StmtID), 0, 0, 0}); err != nil {
				t.Fatal(err)
			}
			if res, _ := roundTrip(t, cc, []byte{byte(ComPing)}); res.Err != nil {
				t.Fatalf("ping: %+v", res)
			}
			if res, _ := roundTrip(t, cc, AppendCommand(nil, ComInitDB, "mysql")); res.Err == nil || res.Err.Code != ErDBAccessDenied {
				t.Fatalf("init db: %+v", res)
			}
		})
	}
	t.Run("ok/million-rows-streamed", func(t *testing.T) {
		// 1,000,000 rows relayed packet by packet (Next + CopyTo into a
		// counting sink) with the tracker finding the end: nothing but
		// the Conn's fixed read buffer holds them.
		cc, err := Dial(ctx, "tcp", db.addr, ClientConfig{User: db.gw, Password: []byte("gw-pass"), Database: db.app, Capabilities: CapDeprecateEOF})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Net.Close()
		cmd := AppendCommand(nil, ComQuery, "SELECT seq, 'row' FROM seq_1_to_1000000")
		if err := cc.Conn.WritePacket(cmd); err != nil {
			t.Fatal(err)
		}
		tr := NewResponseTracker(cc.Capabilities)
		if _, err := tr.Begin(cmd, 1); err != nil {
			t.Fatal(err)
		}
		var sink countingWriter
		for {
			h, prefix, err := cc.Conn.Next()
			if err != nil {
				t.Fatal(err)
			}
			step, err := tr.Feed(h, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cc.Conn.CopyTo(&sink); err != nil {
				t.Fatal(err)
			}
			if step == StepDone {
				break
			}
		}
		if r := tr.Result(); r.Rows != 1_000_000 || r.Err != nil || sink.n < 1_000_000*9 {
			t.Fatalf("%+v, %d bytes relayed", r, sink.n)
		}
	})
	t.Run("fail/wrong-password", func(t *testing.T) {
		_, err := Dial(ctx, "tcp", db.addr, ClientConfig{User: "gw", Password: []byte("nope")})
		var se *ServerError
		if !errors.As(err, &se) || se.Code != ErAccessDenied {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail/tls-required-by-account", func(t *testing.T) {
		_, err := Dial(ctx, "tcp", db.addr, ClientConfig{User: db.gwtls, Password: []byte("tls-pass")})
		var se *ServerError
		if !errors.As(err, &se) || se.Code != ErAccessDenied {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ok/tls-verify-full", func(t *testing.T) {
		cc, err := Dial(ctx, "tcp", db.addr, ClientConfig{User: db.gwtls, Password: []byte("tls-pass"), Database: db.app,
			TLS: &tls.Config{RootCAs: roots(t, db.caPEM), ServerName: "localhost", MinVersion: tls.VersionTLS12}})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Net.Close()
		if !cc.TLS {
			t.Fatal("not TLS")
		}
		if _, ok := cc.Net.(*tls.Conn); !ok {
			t.Fatalf("Net is %T", cc.Net)
		}
		res, rows := roundTrip(t, cc, AppendCommand(nil, ComQuery, "SELECT variable_value <> '' FROM information_schema.session_status WHERE variable_name = 'Ssl_cipher'"))
		if res.Err != nil || len(rows) != 1 || rows[0] != "1" {
			t.Fatalf("Ssl_cipher: %+v %q", res, rows)
		}
	})
	t.Run("fail/tls-unpinned-ca", func(t *testing.T) {
		other, _, _, err := testCerts()
		if err != nil {
			t.Fatal(err)
		}
		_, err = Dial(ctx, "tcp", db.addr, ClientConfig{User: db.gwtls, Password: []byte("tls-pass"),
			TLS: &tls.Config{RootCAs: roots(t, other), ServerName: "localhost"}})
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) {
			t.Fatalf("got %v", err)
		}
	})
}
