package audit

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestSyslogWitness: checkpoints witnessed through a real rsyslogd, over
// TCP and over TLS with a pinned CA; the receiver's file, whatever it
// writes before each message, is a witness record that gives the log's
// newest checkpoint, and one that catches the store truncated behind it.
func TestSyslogWitness(t *testing.T) {
	rs := testenv.StartRsyslog(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rs.CAPEM)
	for _, c := range []struct {
		name string
		spec string
		w    *SyslogWitness
	}{
		{"tcp", "syslog+tcp://" + rs.TCPAddr, nil},
		{"tls", fmt.Sprintf("syslog+tls://%s?ca=%s", rs.TLSAddr, rs.CAFile), &SyslogWitness{Addr: rs.TLSAddr, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := ParseWitness(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			if c.w != nil && w.(*SyslogWitness).TLS.RootCAs == nil {
				t.Fatal("ca= not read")
			}
			if err := os.Truncate(rs.Out, 0); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			store, _ := witnessedLog(t, 250, 100, w)
			want := store.cps[len(store.cps)-1]
			var got airlock.Checkpoint
			// rsyslogd writes its file a moment after it reads the message.
			ok := testenv.Poll(10*time.Second, func() bool {
				f, err := os.Open(rs.Out)
				if err != nil {
					return false
				}
				defer f.Close()
				got, _, err = ReadWitnessed(f, testPub())
				return err == nil && got == want
			})
			if !ok {
				b, _ := os.ReadFile(rs.Out)
				t.Fatalf("the syslog record never held the newest checkpoint %d:\n%s", want.Seq, b)
			}
			// The store loses its last events and checkpoint: only the
			// witness knows.
			store.events = store.events[:150]
			store.cps = store.cps[:1]
			if rep := verifyWitnessed(t, store, got); rep.OK || rep.Problem != ProblemTruncated {
				t.Fatalf("a store truncated behind the syslog witness: %+v", rep)
			}
		})
	}
	for _, bad := range []string{"syslog+tcp://host", "syslog+tcp://h:1?ca=x", "syslog+tls://h:1?cert=x", "syslog+tls://u:p@h:1", "syslog+tls://h:1?ca=/nonexistent"} {
		if _, err := ParseWitness(bad); err == nil {
			t.Errorf("ParseWitness(%q) accepted", bad)
		}
	}
}
