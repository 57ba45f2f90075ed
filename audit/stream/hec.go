package stream

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// Token is a secret (the HEC token) that redacts itself in logs and
// formatted output.
type Token string

// String returns a placeholder, never the token.
func (Token) String() string { return "[REDACTED]" }

// GoString returns a placeholder, never the token.
func (Token) GoString() string { return "[REDACTED]" }

// LogValue returns a placeholder, never the token.
func (Token) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// maxTokenFile bounds the token file.
const maxTokenFile = 4096

func readToken(path string) (Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("audit streams: token_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("audit streams: token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(b) > maxTokenFile || t == "" || strings.ContainsAny(t, "\r\n\t ") {
		return "", fmt.Errorf("audit streams: token_file %s must hold one token (at most %d bytes, no spaces)", path, maxTokenFile)
	}
	return Token(t), nil
}

// hecTimeout bounds one HEC request.
const hecTimeout = 30 * time.Second

// hecSink posts batches to a Splunk HTTP Event Collector:
// POST URL/services/collector/event with "Authorization: Splunk TOKEN" and a
// body of concatenated event objects, each
//
//	{"time":EPOCH.micro,"host":…,"source":…,"sourcetype":…,"index":…,
//	 "fields":{"seq":"N"},"event":EVENT}
//
// (at most maxBody bytes a request). A 2xx answer acknowledges the batch;
// redirects are refused, so the token goes to the configured URL only.
type hecSink struct {
	url        string
	token      Token
	host       string
	index      string
	source     string
	sourceType string
	maxBody    int
	enc        encoder
	client     *http.Client
	body       bytes.Buffer
	ev         []byte
}

func newHEC(c SinkConfig, tok Token, tc *tls.Config, enc encoder) *hecSink {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the token goes straight to the collector
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	src := c.Source
	if src == "" {
		src = "airlock"
	}
	st := c.SourceType
	if st == "" {
		st = "airlock:audit"
		if c.Format == FormatOCSF {
			st = "airlock:ocsf"
		}
	}
	return &hecSink{
		url: strings.TrimRight(c.URL, "/") + "/services/collector/event", token: tok,
		host: localHostname(), index: c.Index, source: src, sourceType: st, maxBody: c.MaxBody, enc: enc,
		client: &http.Client{Transport: tr, Timeout: hecTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

func (s *hecSink) Settle() time.Duration { return 0 }
func (s *hecSink) Alive() error          { return nil }
func (s *hecSink) Reset()                { s.client.CloseIdleConnections() }
func (s *hecSink) Close() error          { s.Reset(); return nil }

func (s *hecSink) Send(ctx context.Context, evs []airlock.Event) error {
	s.body.Reset()
	for i := range evs {
		one, err := s.envelope(&evs[i])
		if err != nil {
			return err
		}
		if s.body.Len() > 0 && s.body.Len()+len(one) > s.maxBody {
			if err := s.post(ctx); err != nil {
				return err
			}
			s.body.Reset()
		}
		s.body.Write(one)
	}
	if s.body.Len() == 0 {
		return nil
	}
	return s.post(ctx)
}

type hecEnvelope struct {
	Time       json.Number       `json:"time"`
	Host       string            `json:"host,omitempty"`
	Source     string            `json:"source,omitempty"`
	SourceType string            `json:"sourcetype,omitempty"`
	Index      string            `json:"index,omitempty"`
	Fields     map[string]string `json:"fields"`
	Event      json.RawMessage   `json:"event"`
}

func (s *hecSink) envelope(e *airlock.Event) ([]byte, error) {
	var err error
	if s.ev, err = s.enc(s.ev[:0], e); err != nil {
		return nil, err
	}
	us := e.Time.UnixMicro()
	ts := strconv.FormatInt(us/1e6, 10) + "." + fmt.Sprintf("%06d", us%1e6)
	return json.Marshal(hecEnvelope{Time: json.Number(ts), Host: s.host, Source: s.source, SourceType: s.sourceType,
		Index: s.index, Fields: map[string]string{"seq": strconv.FormatInt(e.Seq, 10)}, Event: s.ev})
}

// hecAnswer is the part of a HEC reply worth reporting.
type hecAnswer struct {
	Code int `json:"code"`
}

func (s *hecSink) post(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body.Bytes()))
	if err != nil {
		return fmt.Errorf("hec: %w", err)
	}
	req.Header.Set("Authorization", "Splunk "+string(s.token))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds no secret.
		return fmt.Errorf("hec: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var a hecAnswer
	_ = json.Unmarshal(b, &a)
	// Only the status and HEC's numeric code: never the body's text, which
	// a misbehaving server could fill with anything (the token included).
	return fmt.Errorf("hec %s: %s (HEC code %d)", s.url, resp.Status, a.Code)
}
