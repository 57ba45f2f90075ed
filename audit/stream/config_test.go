package stream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/audit/stream"
)

func TestParseConfig(t *testing.T) {
	c := parse(t, `
batch: 200
sinks:
  - {name: siem, type: syslog, address: "siem.example.com:6514", tls: true, format: ocsf}
  - {name: archive, type: file, path: /var/log/airlock/audit.jsonl, max_age: 24h}
  - {name: splunk, type: hec, url: "https://splunk.example.com:8088", token_file: /etc/airlock/hec.token, batch: 50}
`)
	s, f, h := c.Sinks[0], c.Sinks[1], c.Sinks[2]
	if s.Batch != 200 || *s.Facility != stream.DefaultFacility || s.Settle != stream.DefaultSettle || s.Lease != stream.DefaultLease || s.Format != "ocsf" {
		t.Fatalf("syslog defaults: %+v", s)
	}
	if f.MaxBytes != stream.DefaultMaxFileBytes || f.MaxAge != 24*time.Hour || f.MaxFiles != stream.DefaultMaxFiles || f.Format != "airlock" {
		t.Fatalf("file defaults: %+v", f)
	}
	if h.Batch != 50 || h.MaxBody != stream.DefaultHECBytes {
		t.Fatalf("hec: %+v", h)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown-key", "sinks: [{name: a, type: file, path: /x, colour: red}]", "colour"},
		{"inline-token", "sinks: [{name: a, type: hec, url: 'https://h', token: abc}]", "token"},
		{"no-token-file", "sinks: [{name: a, type: hec, url: 'https://h'}]", "token_file"},
		{"http-remote", "sinks: [{name: a, type: hec, url: 'http://splunk.example.com', token_file: /t}]", "https"},
		{"url-credentials", "sinks: [{name: a, type: hec, url: 'https://u:p@h', token_file: /t}]", "credentials"},
		{"duplicate", "sinks: [{name: a, type: file, path: /x}, {name: a, type: file, path: /y}]", "twice"},
		{"bad-name", "sinks: [{name: 'A b', type: file, path: /x}]", "name"},
		{"bad-type", "sinks: [{name: a, type: kafka}]", "type"},
		{"bad-format", "sinks: [{name: a, type: file, path: /x, format: cef}]", "format"},
		{"no-port", "sinks: [{name: a, type: syslog, address: siem}]", "host:port"},
		{"ca-without-tls", "sinks: [{name: a, type: syslog, address: 'h:1', ca_file: /ca}]", "tls"},
		{"facility", "sinks: [{name: a, type: syslog, address: 'h:1', facility: 24}]", "facility"},
		{"batch", "sinks: [{name: a, type: file, path: /x, batch: 100000}]", "batch"},
		{"small-file", "sinks: [{name: a, type: file, path: /x, max_bytes: 10}]", "max_bytes"},
		{"two-docs", "sinks: []\n---\nsinks: []\n", "document"},
		{"huge", strings.Repeat("#", stream.MaxConfigBytes+1), "larger"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			_, err := stream.ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig = %v; want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzParseConfig: any input is refused or yields sinks that are valid
// and fully defaulted (parsing never panics).
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("sinks:\n  - {name: siem, type: syslog, address: 'h:514', tls: true}\n"))
	f.Add([]byte("sinks:\n  - {name: a, type: file, path: /x, max_bytes: 2048, max_age: 1h}\n"))
	f.Add([]byte("sinks:\n  - {name: s, type: hec, url: 'http://127.0.0.1:8088', token_file: /t, format: ocsf}\n"))
	f.Add([]byte("batch: 0\npoll_interval: -1s\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := stream.ParseConfig(b)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, s := range c.Sinks {
			if names[s.Name] || s.Batch < 1 || s.Batch > stream.MaxBatch || s.Lease < time.Second || (s.Format != "airlock" && s.Format != "ocsf") {
				t.Fatalf("accepted an invalid sink: %+v", s)
			}
			names[s.Name] = true
			switch s.Type {
			case "syslog":
				if s.Facility == nil || s.Settle <= 0 {
					t.Fatalf("syslog sink not defaulted: %+v", s)
				}
			case "file":
				if s.Path == "" || s.MaxBytes < 1024 || s.MaxFiles < 1 {
					t.Fatalf("file sink invalid: %+v", s)
				}
			case "hec":
				if s.TokenFile == "" || s.MaxBody < 4096 {
					t.Fatalf("hec sink invalid: %+v", s)
				}
			default:
				t.Fatalf("accepted type %q", s.Type)
			}
		}
	})
}
