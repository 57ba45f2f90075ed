package netguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeListener returns the errors in errs, one per Accept, then conns
// from a net.Pipe; after Close it returns net.ErrClosed.
type fakeListener struct {
	mu     sync.Mutex
	errs   []error
	calls  int
	closed bool
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.closed {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}
	}
	if len(f.errs) > 0 {
		err := f.errs[0]
		if err == errForever {
			return nil, emfile()
		}
		f.errs = f.errs[1:]
		return nil, err
	}
	c, _ := net.Pipe()
	return c, nil
}

func (f *fakeListener) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7432} }

// errForever makes fakeListener fail with EMFILE on every call.
var errForever = errors.New("forever")

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// logLines decodes the JSON log lines in b.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestListenerBacksOffAndServesOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"emfile", emfile},
		{"enfile", func() error {
			return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ENFILE)}
		}},
		{"econnaborted", func() error {
			return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}
		}},
		{"not-temporary", func() error { return errors.New("something odd") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const failures = 40
				fl := &fakeListener{}
				for range failures {
					fl.errs = append(fl.errs, tc.err())
				}
				var logs bytes.Buffer
				l := NewListener(fl, "pg", slog.New(slog.NewJSONHandler(&logs, nil)))
				c, err := l.Accept()
				if err != nil {
					t.Fatalf("Accept after %d errors: %v", failures, err)
				}
				c.Close()
				if fl.calls != failures+1 {
					t.Fatalf("wrapped Accept called %d times, want %d", fl.calls, failures+1)
				}
				// Fewer lines than errors, and together they account for
				// every error exactly once.
				lines := logLines(t, &logs)
				counted, backoffLines, recovered := 0, 0, 0
				for _, m := range lines {
					switch m["msg"] {
					case "accept failed; backing off and serving on":
						backoffLines++
						counted += int(m["errors"].(float64))
					case "accepting connections again":
						recovered++
						counted += int(m["errors_since_last_log"].(float64))
					}
				}
				if backoffLines == 0 || backoffLines >= failures || recovered != 1 || counted != failures {
					t.Fatalf("log: %d back-off lines, %d recovery lines, %d errors counted of %d:\n%s",
						backoffLines, recovered, counted, failures, logs.String())
				}
			})
		})
	}
}

func TestListenerLogsAtMostOncePerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := &fakeListener{errs: []error{errForever}}
		var logs bytes.Buffer
		l := NewListener(fl, "ssh", slog.New(slog.NewJSONHandler(&logs, nil)))
		go l.Accept()
		time.Sleep(10*time.Second + time.Millisecond) // fake time: the bubble's clock
		synctest.Wait()
		l.Close()
		lines := logLines(t, &logs)
		// 10 s of errors: one line at the first, then one a second at most.
		if len(lines) < 2 || len(lines) > 11 {
			t.Fatalf("%d log lines over 10 s of accept errors (%d errors):\n%s", len(lines), fl.calls-1, logs.String())
		}
	})
}

func TestListenerCloseWakesBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := &fakeListener{errs: []error{errForever}}
		l := NewListener(fl, "pg", nil)
		done := make(chan error, 1)
		go func() { _, err := l.Accept(); done <- err }()
		synctest.Wait() // Accept is waiting out a back-off
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
			}
		default:
			t.Fatal("Accept still waiting after Close")
		}
	})
}

func TestListenerClosedReturnsAtOnce(t *testing.T) {
	fl := &fakeListener{closed: true}
	l := NewListener(fl, "pg", nil)
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener: %v", err)
	}
	if fl.calls != 1 {
		t.Fatalf("retried a closed listener: %d calls", fl.calls)
	}
}

// TestListenerRealTCP checks the wrapper over a real listener: connections
// pass, and Close ends Accept with net.ErrClosed.
func TestListenerRealTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, "test", nil)
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			fmt.Fprint(c, "hi")
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}
