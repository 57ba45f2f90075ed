package stream_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit/stream"
)

// FuzzFrame: whatever an event's strings hold, its syslog message is one
// well-formed octet-counted frame (the length is exactly the rest, the
// MSGID printable, the seq in the SD element), and its JSON in either
// format is one valid line: no content splits or forges a message.
func FuzzFrame(f *testing.F) {
	f.Add(int64(1), "login.succeeded", "alice", "prod-db", `{"q":"SELECT 1"}`)
	f.Add(int64(99), "db.query\n<13>1 fake", "ev\"il\u2028", "\x00]", "{\"a\":\"\\n\"}")
	f.Fuzz(func(t *testing.T, seq int64, action, actor, resource, details string) {
		e := airlock.Event{Seq: seq, Time: time.Unix(1700000000, 123456789).UTC(), Actor: airlock.Actor{ID: "id", Name: actor},
			Action: action, Resource: resource, Outcome: airlock.OutcomeSuccess}
		if json.Valid([]byte(details)) {
			e.Details = json.RawMessage(details)
		}
		for _, format := range []string{stream.FormatAirlock, stream.FormatOCSF} {
			b, err := stream.Frame(&e, format)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			n, rest, ok := bytes.Cut(b, []byte(" "))
			l, err := strconv.Atoi(string(n))
			if !ok || err != nil || l != len(rest) {
				t.Fatalf("%s: frame length %q does not match %d bytes", format, n, len(rest))
			}
			fields := bytes.SplitN(rest, []byte(" "), 7)
			if len(fields) != 7 || len(fields[5]) > 32 || len(fields[5]) == 0 {
				t.Fatalf("%s: header %q", format, rest[:min(len(rest), 120)])
			}
			for _, c := range fields[5] {
				if c < 33 || c > 126 {
					t.Fatalf("%s: MSGID %q not printable", format, fields[5])
				}
			}
			sd := []byte(`[airlock@32473 seq="` + strconv.FormatInt(seq, 10) + `"] `)
			if !bytes.HasPrefix(fields[6], sd) {
				t.Fatalf("%s: SD %q", format, fields[6][:min(len(fields[6]), 60)])
			}
			line, err := stream.Encode(&e, format)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(line, "\r\n") || !json.Valid(line) || !bytes.Equal(line, fields[6][len(sd):]) {
				t.Fatalf("%s: line %q is not one JSON line", format, line)
			}
		}
	})
}
