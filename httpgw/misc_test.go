package httpgw

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

type fakeRecorder struct {
	mu        sync.Mutex
	created   []airlock.Session
	ended     []airlock.Session
	createErr error
}

func (f *fakeRecorder) CreateSession(_ context.Context, s *airlock.Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, *s)
	return f.createErr
}

func (f *fakeRecorder) EndSession(_ context.Context, s *airlock.Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, *s)
	return nil
}

func TestSessionRecorder(t *testing.T) {
	rec := &fakeRecorder{}
	h := newHarness(t, func(_ *Target, c *Config) { c.Sessions = rec })
	h.get("/a")
	h.g.CloseGrant("gra_1", airlock.EndGrantRevoked)
	h.audit.wait(t, "session.ended", 1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.created) != 1 || rec.created[0].Kind != airlock.KindHTTP || rec.created[0].GrantID != "gra_1" || rec.created[0].Node != "node1" {
		t.Errorf("created %+v", rec.created)
	}
	if len(rec.ended) != 1 || rec.ended[0].EndReason != string(airlock.EndGrantRevoked) || rec.ended[0].EndedAt.IsZero() || rec.ended[0].Statements != 1 {
		t.Errorf("ended %+v", rec.ended)
	}
}

func TestSessionRecorderFailure(t *testing.T) {
	rec := &fakeRecorder{createErr: errors.New("store down")}
	h := newHarness(t, func(_ *Target, c *Config) { c.Sessions = rec })
	if resp, _ := h.get("/a"); resp.StatusCode == 200 {
		t.Error("served without a session row")
	}
	if len(h.up.requests()) != 0 {
		t.Error("forwarded")
	}
}

func TestUpstreamDown(t *testing.T) {
	h := newHarness(t, func(tg *Target, _ *Config) {
		tg.Upstream, _ = url.Parse("http://127.0.0.1:1")
	})
	if resp, _ := h.get("/a"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d", resp.StatusCode)
	}
	e := h.audit.wait(t, "http.response", 1)[0]
	if d := details(t, e); e.Outcome != airlock.OutcomeFailure || d["status"] != float64(502) || d["error"] == nil {
		t.Errorf("http.response %s %s", e.Outcome, e.Details)
	}
}

func TestRefusalReason(t *testing.T) {
	now := time.Now()
	tg := &Target{EndsAt: now.Add(time.Hour)}
	withReason := airlock.Errorf(airlock.EUNAUTHORIZED, "x")
	withReason.Details = map[string]any{"end_reason": "user_disabled"}
	bogus := airlock.Errorf(airlock.EUNAUTHORIZED, "x")
	bogus.Details = map[string]any{"end_reason": "not-a-reason"}
	for _, c := range []struct {
		err  error
		t    *Target
		now  time.Time
		want airlock.EndReason
	}{
		{withReason, tg, now, airlock.EndUserDisabled},
		{bogus, tg, now, airlock.EndGrantRevoked},
		{errors.New("plain"), tg, now.Add(2 * time.Hour), airlock.EndGrantExpired},
		{errors.New("plain"), nil, now, airlock.EndGrantRevoked},
	} {
		if got := refusalReason(c.err, c.t, c.now); got != c.want {
			t.Errorf("refusalReason(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestNewRequires(t *testing.T) {
	ok := Config{Domain: "d", ConsoleURL: "c", Auth: &fakeAuth{}, Audit: &fakeAudit{}, Identity: &fakeSigner{}}
	for name, edit := range map[string]func(*Config){
		"Auth": func(c *Config) { c.Auth = nil }, "Audit": func(c *Config) { c.Audit = nil },
		"Identity": func(c *Config) { c.Identity = nil }, "Domain": func(c *Config) { c.Domain = "" },
		"ConsoleURL": func(c *Config) { c.ConsoleURL = "" },
	} {
		c := ok
		edit(&c)
		if _, err := New(c); err == nil {
			t.Errorf("New without %s: no error", name)
		}
	}
	if _, err := New(ok); err != nil {
		t.Error(err)
	}
}

func TestServeAfterShutdown(t *testing.T) {
	h := newHarness(t, nil)
	h.g.Shutdown(context.Background())
	ln := newLocalListener(t)
	if err := h.g.Serve(ln); !errors.Is(err, ErrGatewayClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}
