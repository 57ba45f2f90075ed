package stream

import (
	"bufio"
	"context"
	"crypto/tls"

	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
)

// syslogTimeout bounds a dial and each batch's write.
const syslogTimeout = 10 * time.Second

// syslogSink sends RFC 5424 messages over TCP or TLS, framed by octet
// counting (RFC 6587 section 3.4.1): "LEN SP MSG". Each message is
//
//	<PRI>1 TIMESTAMP HOSTNAME airlock - MSGID [airlock@32473 seq="N"] JSON
//
// with PRI = facility×8 + severity (6 informational for a success, 5
// notice otherwise), TIMESTAMP the event's time (UTC, microseconds),
// MSGID the action (at most 32 characters) and JSON the event in the
// sink's format. 32473 is the enterprise number RFC 5612 reserves for
// documentation; the SD-ID names the seq so a receiver can drop
// duplicates without parsing the JSON.
type syslogSink struct {
	addr     string
	tls      *tls.Config
	facility int
	host     string
	settle   time.Duration
	enc      encoder

	conn net.Conn
	w    *bufio.Writer
	buf  []byte
	msg  []byte // frame's scratch

	mu   sync.Mutex
	dead error // set by the connection's reader when the receiver closes it
}

func newSyslog(addr string, tc *tls.Config, facility int, host string, settle time.Duration, enc encoder) *syslogSink {
	return &syslogSink{addr: addr, tls: tc, facility: facility, host: host, settle: settle, enc: enc}
}

func (s *syslogSink) Settle() time.Duration { return s.settle }

func (s *syslogSink) connect(ctx context.Context) error {
	d := &net.Dialer{Timeout: syslogTimeout, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if s.tls != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		c, err = td.DialContext(ctx, "tcp", s.addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog %s: %w", s.addr, err)
	}
	s.mu.Lock()
	s.dead = nil
	s.conn, s.w = c, bufio.NewWriterSize(c, 64<<10)
	s.mu.Unlock()
	// A receiver never writes to us: a read returns only when it closes
	// or resets the connection (kill, restart, idle timeout), which is
	// what tells Alive that events in flight may be lost.
	go func() {
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		s.mu.Lock()
		if s.conn == c {
			s.dead = fmt.Errorf("syslog %s: the receiver closed the connection: %w", s.addr, err)
		}
		s.mu.Unlock()
	}()
	return nil
}

func (s *syslogSink) Send(ctx context.Context, evs []airlock.Event) error {
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return err
		}
	}
	if err := s.Alive(); err != nil {
		s.Reset()
		return err
	}
	s.conn.SetWriteDeadline(time.Now().Add(syslogTimeout))
	for i := range evs {
		var err error
		s.buf, err = s.frame(s.buf[:0], &evs[i])
		if err != nil {
			s.Reset()
			return err
		}
		if _, err := s.w.Write(s.buf); err != nil {
			s.Reset()
			return fmt.Errorf("syslog %s: %w", s.addr, err)
		}
	}
	if err := s.w.Flush(); err != nil {
		s.Reset()
		return fmt.Errorf("syslog %s: %w", s.addr, err)
	}
	return nil
}

// frame appends the octet-counted RFC 5424 message of e to dst.
func (s *syslogSink) frame(dst []byte, e *airlock.Event) ([]byte, error) {
	sev := 6
	if e.Outcome != airlock.OutcomeSuccess {
		sev = 5
	}
	// The message is built after a placeholder for its length, then moved.
	msg := s.msg[:0]
	msg = append(msg, '<')
	msg = strconv.AppendInt(msg, int64(s.facility*8+sev), 10)
	msg = append(msg, ">1 "...)
	msg = e.Time.UTC().AppendFormat(msg, "2006-01-02T15:04:05.000000Z")
	msg = append(msg, ' ')
	msg = append(msg, s.host...)
	msg = append(msg, " airlock - "...)
	msg = appendMsgID(msg, e.Action)
	msg = append(msg, ` [airlock@32473 seq="`...)
	msg = strconv.AppendInt(msg, e.Seq, 10)
	msg = append(msg, `"] `...)
	msg, err := s.enc(msg, e)
	if err != nil {
		return dst, err
	}
	s.msg = msg
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...), nil
}

// appendMsgID appends action as an RFC 5424 MSGID: 1 to 32 printable
// US-ASCII characters ("-" when there are none).
func appendMsgID(dst []byte, action string) []byte {
	if action == "" {
		return append(dst, '-')
	}
	for i := 0; i < len(action) && i < 32; i++ {
		c := action[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

func (s *syslogSink) Alive() error {
	if s.conn == nil {
		return errNotConnected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func (s *syslogSink) Reset() {
	s.mu.Lock()
	c := s.conn
	s.conn, s.w = nil, nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (s *syslogSink) Close() error { s.Reset(); return nil }
