package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/airlockhq/airlock"
)

// Sink is where a Streamer delivers events.
type Sink interface {
	// Send delivers evs, in order. nil means the sink took all of them;
	// an error that it may have taken some, none or all (the streamer
	// sends them again).
	Send(ctx context.Context, evs []airlock.Event) error
	// Settle is how long after a successful Send the sink must stay up
	// (Alive) before the events count as delivered: 0 when Send's success
	// already means that (fsynced, acknowledged).
	Settle() time.Duration
	// Alive reports an error when what was sent since the last failure may
	// have been lost (the connection was closed or reset).
	Alive() error
	// Reset drops any connection or open file; the next Send starts afresh.
	Reset()
	// Close releases the sink.
	Close() error
}

// NewSink builds the sink c configures. Files it names (CA, HEC token) are
// read now; a missing one is an error.
func NewSink(c SinkConfig, opts SinkOptions) (Sink, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	enc := encoderFor(c.Format)
	switch c.Type {
	case TypeSyslog:
		var tc *tls.Config
		if c.TLS {
			var err error
			if tc, err = tlsConfig(c.CAFile, c.ServerName); err != nil {
				return nil, err
			}
		}
		host := c.Hostname
		if host == "" {
			host = localHostname()
		}
		return newSyslog(c.Address, tc, *c.Facility, host, c.Settle, enc), nil
	case TypeFile:
		return newFileSink(c.Path, c.MaxBytes, c.MaxAge, c.MaxFiles, enc, opts.Now), nil
	case TypeHEC:
		tok, err := readToken(c.TokenFile)
		if err != nil {
			return nil, err
		}
		var tc *tls.Config
		if c.CAFile != "" || c.ServerName != "" {
			if tc, err = tlsConfig(c.CAFile, c.ServerName); err != nil {
				return nil, err
			}
		}
		return newHEC(c, tok, tc, enc), nil
	}
	return nil, airlock.Errorf(airlock.EINVALID, "audit streams: sink %q: unknown type %q", c.Name, c.Type)
}

// SinkOptions are what sinks take from the server rather than the file.
type SinkOptions struct {
	Now func() time.Time // the clock file rotation goes by
}

func tlsConfig(caFile, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("audit streams: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("audit streams: ca_file %s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func localHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" || len(h) > 255 || !printASCII(h) {
		return "-"
	}
	return h
}

// errNotConnected is Alive's answer before the first Send or after Reset.
var errNotConnected = errors.New("not connected")
