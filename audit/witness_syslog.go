package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
)

// SyslogWitness sends each checkpoint to a syslog receiver as one RFC 5424
// message over TCP, or TLS when TLS is set, with octet counting (RFC
// 6587): facility auth, severity notice, APP-NAME airlock, MSGID
// checkpoint, the checkpoint's JSON as the message. Syslog over TCP has
// no acknowledgement: a checkpoint counts as delivered once it is written
// to the connection, so a receiver that crashes may lose the last one;
// the next checkpoint covers it. The receiver's file is a witness record
// for `airlock audit verify --witness`, whatever it writes before the JSON
// on each line (ReadWitnessed skips it).
type SyslogWitness struct {
	Addr string      // host:port
	TLS  *tls.Config // nil: plain TCP
	Host string      // HOSTNAME field (default os.Hostname)
}

func (w *SyslogWitness) String() string {
	if w.TLS != nil {
		return "syslog+tls://" + w.Addr
	}
	return "syslog+tcp://" + w.Addr
}

// syslogPRI is <facility auth (4) * 8 + severity notice (5)>.
const syslogPRI = "<37>"

// Witness sends c, on a connection of its own (checkpoints are seconds
// apart; a connection kept open would only hide a receiver that went away).
func (w *SyslogWitness) Witness(ctx context.Context, c airlock.Checkpoint) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	host := w.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "-"
	}
	msg := syslogPRI + "1 " + time.Now().UTC().Format("2006-01-02T15:04:05.000000Z") + " " + host + " airlock - checkpoint - " + string(body)
	frame := strconv.Itoa(len(msg)) + " " + msg
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var conn net.Conn
	if w.TLS != nil {
		conn, err = (&tls.Dialer{Config: w.TLS}).DialContext(ctx, "tcp", w.Addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", w.Addr)
	}
	if err != nil {
		return fmt.Errorf("witness %s: %w", w, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte(frame)); err != nil {
		return fmt.Errorf("witness %s: %w", w, err)
	}
	return conn.Close()
}

// parseSyslogWitness reads syslog+tcp://HOST:PORT or
// syslog+tls://HOST:PORT[?ca=FILE] (FILE: PEM CA certificates to trust
// instead of the system's).
func parseSyslogWitness(spec string) (Witness, error) {
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" || u.Port() == "" || u.User != nil || u.Path != "" {
		return nil, fmt.Errorf("audit witness %q: want syslog+tcp://HOST:PORT or syslog+tls://HOST:PORT[?ca=FILE]", redactURL(spec))
	}
	w := &SyslogWitness{Addr: u.Host}
	q := u.Query()
	switch u.Scheme {
	case "syslog+tcp":
		if len(q) > 0 {
			return nil, fmt.Errorf("audit witness %q: syslog+tcp takes no options", redactURL(spec))
		}
	case "syslog+tls":
		w.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		for k := range q {
			if k != "ca" {
				return nil, fmt.Errorf("audit witness %q: unknown option %q (want ca=FILE)", redactURL(spec), k)
			}
		}
		if ca := q.Get("ca"); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("audit witness %s: %v", w, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("audit witness %s: %s holds no PEM certificate", w, ca)
			}
			w.TLS.RootCAs = pool
		}
	}
	return w, nil
}
