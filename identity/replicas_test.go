package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
)

func TestMain(m *testing.M) { testenv.RunMain(m) }

// storeKinds opens two replicas (A and B) on one shared store: on SQLite
// they share the store handle; on PostgreSQL each has its own connection
// pool and audit log, as separate processes would.
var storeKinds = []struct {
	name string
	open func(t *testing.T, clk *clock) (a, b *Service, store airlock.Store)
}{
	{"sqlite", func(t *testing.T, clk *clock) (*Service, *Service, airlock.Store) {
		svcs, store := replicas(t, clk, 2)
		return svcs[0], svcs[1], store
	}},
	{"postgres", func(t *testing.T, clk *clock) (*Service, *Service, airlock.Store) {
		pg := testenv.Postgres(t)
		dsn := pg.DSN(pg.NewDatabase(t))
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		var out []*Service
		var first airlock.Store
		for range 2 {
			db, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			al, err := audit.Open(t.Context(), db, audit.Options{Signer: key, Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { al.Close(context.Background()) })
			if first == nil {
				first = db
			}
			out = append(out, newReplica(t, clk, db, al))
		}
		return out[0], out[1], first
	}},
}

func pushEvents(t *testing.T, store airlock.Store, action, pushID string) int {
	t.Helper()
	evs, err := store.ListEvents(context.Background(), airlock.EventFilter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		var d struct {
			PushID string `json:"push_id"`
		}
		json.Unmarshal(e.Details, &d)
		if d.PushID == pushID {
			n++
		}
	}
	return n
}

// TestPushAcrossReplicas: a push begun on replica A is delivered to a
// device connected to B, answered on B, and its approval used on A, once;
// of concurrent answers on both replicas exactly one counts; the rate
// limit and the timeout audit are shared.
func TestPushAcrossReplicas(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
			a, b, store := kind.open(t, clk)
			ctx := context.Background()
			u, err := a.createUser(ctx, airlock.SystemActor, "alice", password, nil, "", "user.created")
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Login(ctx, "alice", password, FactorInput{}, "127.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			dev := &Principal{User: u, Session: res.Session, Source: "127.0.0.1:1"}
			if err := a.markFresh(ctx, dev, MethodWebAuthn, "mfa.verified"); err != nil {
				t.Fatal(err)
			}
			pushA := a.NewPush(PushConfig{PollInterval: 5 * time.Millisecond})
			pushB := b.NewPush(PushConfig{PollInterval: 5 * time.Millisecond})
			_, tok, err := pushA.RegisterDevice(ctx, dev, "laptop")
			if err != nil {
				t.Fatal(err)
			}
			login := func(svc *Service) string {
				t.Helper()
				res, err := svc.Login(ctx, "alice", password, FactorInput{}, "10.0.0.9:2")
				if err != nil || res.Challenge == "" {
					t.Fatalf("login: %v", err)
				}
				return res.Challenge
			}
			// The device listens on B; the push is begun on A.
			events, cancel := pushB.Subscribe(u.ID)
			defer cancel()
			chal := login(b)
			c, err := pushA.BeginLogin(ctx, chal, "10.0.0.9:2")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-events:
				if got.ID != c.ID || len(got.Choices) != 3 {
					t.Fatalf("device on B got %+v", got)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a push begun on A never reached the device on B")
			}
			if err := pushB.Answer(ctx, dev, tok, c.ID, c.Number); err != nil {
				t.Fatalf("answer on B: %v", err)
			}
			if st, _, err := pushA.Status(ctx, c.ID); err != nil || st != PushApproved {
				t.Fatalf("status on A: %q %v", st, err)
			}
			res, err = pushA.LoginPush(ctx, chal, c.ID, "10.0.0.9:2")
			if err != nil || res.Token == "" || res.Session.MFAMethod != MethodPush {
				t.Fatalf("login by push on A: %v", err)
			}
			if _, err := pushB.LoginPush(ctx, login(b), c.ID, "10.0.0.9:2"); err == nil {
				t.Fatal("an approval was used twice (once per replica)")
			}

			// Concurrent answers on both replicas: exactly one counts.
			c2, err := pushB.BeginLogin(ctx, login(a), "10.0.0.9:2")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			wins, other := 0, map[string]int{}
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ps := []*Push{pushA, pushB}[i%2]
					err := ps.Answer(ctx, dev, tok, c2.ID, c2.Number)
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						wins++
					} else {
						other[airlock.ErrorCode(err)]++
					}
				}()
			}
			wg.Wait()
			if wins != 1 || other[airlock.EINVALID] != 9 {
				t.Fatalf("concurrent answers: %d won, others %v; want exactly 1", wins, other)
			}
			if n := pushEvents(t, store, "mfa.push_approved", c2.ID); n != 1 {
				t.Fatalf("mfa.push_approved events: %d", n)
			}

			// Timeout: expired on both replicas, audited once.
			c3, err := pushA.BeginLogin(ctx, login(a), "10.0.0.9:2")
			if err != nil {
				t.Fatal(err)
			}
			// The rate limit (3 per 5 min) counts on both replicas.
			if _, err := pushB.BeginLogin(ctx, login(b), "10.0.0.9:2"); !airlock.IsCode(err, airlock.ELOCKED) {
				t.Fatalf("fourth push, on the other replica: %v", err)
			}
			clk.add(61 * time.Second)
			wg = sync.WaitGroup{}
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ps := []*Push{pushA, pushB}[i%2]
					if st, _, err := ps.Status(ctx, c3.ID); err != nil || st != PushExpired {
						t.Errorf("status after the TTL: %q %v", st, err)
					}
				}()
			}
			wg.Wait()
			if n := pushEvents(t, store, "mfa.push_timeout", c3.ID); n != 1 {
				t.Fatalf("mfa.push_timeout events: %d, want 1", n)
			}
			if err := pushB.Answer(ctx, dev, tok, c3.ID, c3.Number); !airlock.IsCode(err, airlock.EINVALID) {
				t.Fatalf("late answer: %v", err)
			}
			if cs, err := pushA.Pending(ctx, u.ID); err != nil || len(cs) != 0 {
				t.Fatalf("pending after all were answered: %v %v", cs, err)
			}
		})
	}
}

// TestThrottleAcrossStores: the (user, source) count is shared by two
// replicas on each store, PostgreSQL included: after 5 failures on A,
// 20 parallel guesses on A and B are all refused unchecked.
func TestThrottleAcrossStores(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
			a, b, store := kind.open(t, clk)
			ctx := context.Background()
			if _, err := a.createUser(ctx, airlock.SystemActor, "alice", password, nil, "", "user.created"); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := a.Login(ctx, "alice", "wrong password!!", FactorInput{}, attacker+":1"); !airlock.IsCode(err, airlock.EUNAUTHORIZED) {
					t.Fatalf("attempt %d on A: %v", i+1, err)
				}
			}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					svc := []*Service{b, a}[i%2]
					if _, err := svc.Login(ctx, "alice", fmt.Sprintf("wrong guess %03d!", i), FactorInput{}, fmt.Sprintf("%s:%d", attacker, i)); !airlock.IsCode(err, airlock.ELOCKED) {
						t.Errorf("guess past the free ones: %v", err)
					}
				}()
			}
			wg.Wait()
			if n := checked(t, store, "wrong password"); n != 5 {
				t.Fatalf("%d guesses on two replicas checked, want 5", n)
			}
			if res, err := b.Login(ctx, "alice", password, FactorInput{}, ownerAddr); err != nil || res.Token == "" {
				t.Fatalf("owner elsewhere: %v", err)
			}
		})
	}
}
