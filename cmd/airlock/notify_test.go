package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/policy"
)

type memAuditor struct {
	mu  sync.Mutex
	evs []airlock.Event
}

func (m *memAuditor) Record(_ context.Context, e airlock.Event) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, e)
	return int64(len(m.evs)), nil
}

// TestServerNotifierNeverFollowsRedirects drives the notifier the server
// wires up: a receiver's 302 must not make the server POST (with its
// X-Airlock-* headers) to the URL it points at.
func TestServerNotifierNeverFollowsRedirects(t *testing.T) {
	var second atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { second.Add(1) }))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
	}))
	defer first.Close()
	t.Setenv("AIRLOCK_CRED_TEST_HOOK_SECRET", "whsec-0123456789")

	al := &memAuditor{}
	creds := access.CredentialSources{EnvPrefix: DefaultCredentialsEnvPrefix}
	n := newNotifier(al, slog.New(slog.DiscardHandler), "http://airlock.test", false, time.Now, creds.Resolve)
	n.policy = func() (*policy.Policy, int64) {
		p, _, err := policy.Parse(map[string][]byte{"p.yaml": []byte("version: 1\nnotify:\n  - name: sec\n    type: webhook\n    url: " + first.URL + "/hook\n    secret_env: AIRLOCK_CRED_TEST_HOOK_SECRET\n")})
		if err != nil {
			t.Fatal(err)
		}
		return p, 1
	}
	n.send(t.Context(), []string{"sec"}, access.Notification{Kind: "request.created", RequestID: "req_1", User: "alice", Resource: "prod-db", Access: "read"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n.close(ctx)
	if c := second.Load(); c != 0 {
		t.Fatalf("the redirect target received %d request(s)", c)
	}
	al.mu.Lock()
	defer al.mu.Unlock()
	if len(al.evs) != 1 || al.evs[0].Action != "notify.failed" {
		t.Fatalf("want one notify.failed, got %+v", al.evs)
	}
}
