package stream

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/airlockhq/airlock"
)

// Sink types.
const (
	TypeSyslog = "syslog"
	TypeFile   = "file"
	TypeHEC    = "hec"
)

// Formats of the events a sink receives.
const (
	FormatAirlock = "airlock" // the event as the audit log stores it (airlock.Event JSON)
	FormatOCSF    = "ocsf"    // mapped to OCSF 1.1 (see OCSF)
)

// Defaults of the tunables.
const (
	DefaultBatch        = 1000
	DefaultPoll         = 200 * time.Millisecond
	DefaultLease        = 15 * time.Second
	DefaultSettle       = 2 * time.Second
	DefaultAlertLag     = 10000
	DefaultAlertAfter   = time.Minute
	DefaultMaxFileBytes = 100 << 20
	DefaultMaxFiles     = 10
	DefaultFacility     = 13 // log audit
	DefaultHECBytes     = 1 << 20
)

// MaxConfigBytes bounds a streams file.
const MaxConfigBytes = 1 << 20

// MaxBatch bounds Batch: the events one sink holds in memory at a time.
const MaxBatch = 10000

// Config is the streams file: the sinks and the defaults they share.
type Config struct {
	// Sinks are streamed to independently, each from its own cursor.
	Sinks []SinkConfig `yaml:"sinks"`
	// Defaults for every sink that does not set its own.
	Batch      int           `yaml:"batch"`
	Poll       time.Duration `yaml:"poll_interval"`
	Lease      time.Duration `yaml:"lease"`
	AlertLag   int64         `yaml:"alert_lag"`
	AlertAfter time.Duration `yaml:"alert_after"`
}

// SinkConfig is one sink.
type SinkConfig struct {
	// Name identifies the sink's cursor in the store: renaming a sink
	// starts it again from seq 1.
	Name   string `yaml:"name"`
	Type   string `yaml:"type"`   // syslog, file or hec
	Format string `yaml:"format"` // airlock (default) or ocsf

	// syslog: host:port, TLS (verified against CAFile or the system
	// roots; ServerName defaults to the host), facility (default 13, log
	// audit), the HOSTNAME field (default the host's name), Settle.
	Address    string        `yaml:"address"`
	TLS        bool          `yaml:"tls"`
	CAFile     string        `yaml:"ca_file"`
	ServerName string        `yaml:"server_name"`
	Facility   *int          `yaml:"facility"`
	Hostname   string        `yaml:"hostname"`
	Settle     time.Duration `yaml:"settle"`

	// file: the path written to, rotated when it would pass MaxBytes or
	// is MaxAge old; MaxFiles rotated files are kept (0: default 10).
	Path     string        `yaml:"path"`
	MaxBytes int64         `yaml:"max_bytes"`
	MaxAge   time.Duration `yaml:"max_age"`
	MaxFiles int           `yaml:"max_files"`

	// hec: the collector's base URL (…/services/collector/event is
	// appended), the file holding the token (never inline), and the
	// index, source and sourcetype of the events. http:// only to a
	// loopback host.
	URL        string `yaml:"url"`
	TokenFile  string `yaml:"token_file"`
	Index      string `yaml:"index"`
	Source     string `yaml:"source"`
	SourceType string `yaml:"sourcetype"`
	MaxBody    int    `yaml:"max_body_bytes"`

	// Per-sink overrides of Config's defaults.
	Batch      int           `yaml:"batch"`
	Poll       time.Duration `yaml:"poll_interval"`
	Lease      time.Duration `yaml:"lease"`
	AlertLag   int64         `yaml:"alert_lag"`
	AlertAfter time.Duration `yaml:"alert_after"`
}

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ParseConfig decodes and validates a streams file (YAML): unknown keys,
// a second document, duplicate or malformed names, unknown types or
// formats and missing settings are refused with an EINVALID error naming
// the sink. Defaults are filled in.
func ParseConfig(b []byte) (*Config, error) {
	if len(b) > MaxConfigBytes {
		return nil, airlock.Errorf(airlock.EINVALID, "audit streams: the file is larger than %d bytes", MaxConfigBytes)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, airlock.Errorf(airlock.EINVALID, "audit streams: %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "audit streams: more than one YAML document")
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) normalize() error {
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.AlertLag == 0 {
		c.AlertLag = DefaultAlertLag
	}
	if c.AlertAfter == 0 {
		c.AlertAfter = DefaultAlertAfter
	}
	seen := map[string]bool{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if !sinkName.MatchString(s.Name) {
			return airlock.Errorf(airlock.EINVALID, "audit streams: sink %d: name %q must be 1-63 of a-z 0-9 _ - (starting with a letter or digit)", i+1, s.Name)
		}
		if seen[s.Name] {
			return airlock.Errorf(airlock.EINVALID, "audit streams: sink %q is defined twice", s.Name)
		}
		seen[s.Name] = true
		if err := s.normalize(c); err != nil {
			return airlock.Errorf(airlock.EINVALID, "audit streams: sink %q: %v", s.Name, err)
		}
	}
	return nil
}

func (s *SinkConfig) normalize(c *Config) error {
	if s.Format == "" {
		s.Format = FormatAirlock
	}
	if s.Format != FormatAirlock && s.Format != FormatOCSF {
		return fmt.Errorf("format %q: want airlock or ocsf", s.Format)
	}
	pick := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	pick(&s.Batch, c.Batch)
	if s.Poll == 0 {
		s.Poll = c.Poll
	}
	if s.Lease == 0 {
		s.Lease = c.Lease
	}
	if s.AlertLag == 0 {
		s.AlertLag = c.AlertLag
	}
	if s.AlertAfter == 0 {
		s.AlertAfter = c.AlertAfter
	}
	if s.Batch < 1 || s.Batch > MaxBatch {
		return fmt.Errorf("batch %d: want 1 to %d", s.Batch, MaxBatch)
	}
	if s.Poll < time.Millisecond || s.Lease < time.Second || s.AlertAfter < 0 || s.AlertLag < 1 {
		return fmt.Errorf("poll_interval must be at least 1ms, lease at least 1s, alert_lag positive (got %s, %s, %d)", s.Poll, s.Lease, s.AlertLag)
	}
	switch s.Type {
	case TypeSyslog:
		host, port, err := net.SplitHostPort(s.Address)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("address %q: want host:port", s.Address)
		}
		if s.Facility == nil {
			f := DefaultFacility
			s.Facility = &f
		}
		if *s.Facility < 0 || *s.Facility > 23 {
			return fmt.Errorf("facility %d: want 0 to 23", *s.Facility)
		}
		if s.Settle == 0 {
			s.Settle = DefaultSettle
		}
		if s.Settle < 0 {
			return fmt.Errorf("settle %s: want a positive duration", s.Settle)
		}
		if !s.TLS && (s.CAFile != "" || s.ServerName != "") {
			return fmt.Errorf("ca_file and server_name need tls: true")
		}
		if len(s.Hostname) > 255 || !printASCII(s.Hostname) {
			return fmt.Errorf("hostname %q: want at most 255 printable ASCII characters", s.Hostname)
		}
	case TypeFile:
		if s.Path == "" {
			return fmt.Errorf("path is required")
		}
		if s.MaxBytes == 0 {
			s.MaxBytes = DefaultMaxFileBytes
		}
		if s.MaxFiles == 0 {
			s.MaxFiles = DefaultMaxFiles
		}
		if s.MaxBytes < 1024 || s.MaxAge < 0 || s.MaxFiles < 1 {
			return fmt.Errorf("max_bytes must be at least 1024, max_age not negative, max_files positive (got %d, %s, %d)", s.MaxBytes, s.MaxAge, s.MaxFiles)
		}
	case TypeHEC:
		u, err := url.Parse(s.URL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("url %q: want https://host[:port][/path] with no credentials or query", s.URL)
		}
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return fmt.Errorf("url %q: the token would cross the network in clear; use https (http only to a loopback address)", s.URL)
		}
		if s.TokenFile == "" {
			return fmt.Errorf("token_file is required (the HEC token is never written inline)")
		}
		if s.MaxBody == 0 {
			s.MaxBody = DefaultHECBytes
		}
		if s.MaxBody < 4096 {
			return fmt.Errorf("max_body_bytes %d: want at least 4096", s.MaxBody)
		}
	default:
		return fmt.Errorf("type %q: want syslog, file or hec", s.Type)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func printASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
