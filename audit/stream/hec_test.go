package stream_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
)

// hecServer is a HEC-compatible collector: it checks the path and the
// token, fails the first failN requests with 503, and records the seqs of
// the events it accepted.
type hecServer struct {
	token string
	failN int32

	mu    sync.Mutex
	seqs  map[string]int
	calls atomic.Int32
	bad   []string
}

func (h *hecServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.calls.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/services/collector/event" || r.Header.Get("Authorization") != "Splunk "+h.token {
		h.bad = append(h.bad, r.Method+" "+r.URL.Path+" auth="+fmt.Sprint(r.Header.Get("Authorization") != ""))
		http.Error(w, `{"text":"Invalid token","code":4}`, http.StatusUnauthorized)
		return
	}
	if n <= h.failN {
		// A misbehaving collector that echoes the token: it must not reach logs or alerts.
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"text":"busy, token %s","code":9}`, h.token)
		return
	}
	dec := json.NewDecoder(r.Body)
	for {
		var env struct {
			Time       json.Number       `json:"time"`
			SourceType string            `json:"sourcetype"`
			Fields     map[string]string `json:"fields"`
			Event      map[string]any    `json:"event"`
		}
		if err := dec.Decode(&env); err == io.EOF {
			break
		} else if err != nil {
			h.bad = append(h.bad, "body: "+err.Error())
			http.Error(w, `{"text":"Invalid data format","code":6}`, http.StatusBadRequest)
			return
		}
		if env.Event["class_uid"] == nil || env.SourceType != "airlock:ocsf" || env.Time == "" {
			h.bad = append(h.bad, fmt.Sprintf("event %v sourcetype %q", env.Event, env.SourceType))
		}
		h.seqs[env.Fields["seq"]]++
	}
	w.Write([]byte(`{"text":"Success","code":0}`))
}

// TestHECBatchesWithRetry streams OCSF events to a HEC endpoint that fails
// the first requests: every seq arrives, the token is sent as
// "Authorization: Splunk TOKEN" and appears in no log line and no alert.
func TestHECBatchesWithRetry(t *testing.T) {
	const token = "8f1c2e0a-hec-token-secret-42"
	h := &hecServer{token: token, failN: 3, seqs: map[string]int{}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tokFile := filepath.Join(t.TempDir(), "hec.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	w.appendN(t, 3000, 4)
	var logs bytes.Buffer
	w.start(t, parse(t, fmt.Sprintf(`
sinks:
  - name: splunk
    type: hec
    format: ocsf
    url: %s
    token_file: %s
    max_body_bytes: 65536
    alert_after: 1ms
`, srv.URL, tokFile)), "node-a", &logs)
	if !poll(func() bool { return w.actions(t)["audit.stream.recovered"] == 1 && w.cursor(t, "splunk") == w.head(t) }) {
		t.Fatalf("cursor %d of %d, alerts %v", w.cursor(t, "splunk"), w.head(t), w.actions(t))
	}
	head := w.head(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bad) > 0 {
		t.Fatalf("collector refused: %v", h.bad[:min(3, len(h.bad))])
	}
	for seq := int64(1); seq <= head; seq++ {
		if h.seqs[fmt.Sprint(seq)] == 0 {
			t.Fatalf("seq %d never arrived", seq)
		}
	}
	if w.actions(t)["audit.stream.failing"] != 1 {
		t.Fatalf("alerts %v; want one audit.stream.failing", w.actions(t))
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the HEC token appears in the logs")
	}
	if !strings.Contains(logs.String(), "503") {
		t.Fatalf("the failure is not logged: %s", logs.String())
	}
	evs, err := w.store.ListEvents(t.Context(), airlockFilter("audit.stream.failing"))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || strings.Contains(string(evs[0].Details), token) || !strings.Contains(string(evs[0].Details), "503") {
		t.Fatalf("failing alerts %+v: want one naming the 503, never the token", evs)
	}
}

func poll(cond func() bool) bool { return testenv.Poll(time.Minute, cond) }

func airlockFilter(action string) airlock.EventFilter { return airlock.EventFilter{Action: action} }
