package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// A statement push shows the device what it approves, lasts the hold's
// timeout, is bound to its hold, and its approval is used once.
func TestPushStatement(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	_, push, dev, tok, _ := pushUser(t, clk)
	ctx := context.Background()
	events, cancel := push.Subscribe(dev.User.ID)
	defer cancel()

	long := "prod-db (write): DELETE FROM orders /* " + strings.Repeat("é", 3000) + " */"
	c, err := push.BeginStatement(ctx, dev.User.ID, "hold_1", long, "10.0.0.9:2", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := <-events
	if got.ID != c.ID || got.Purpose != PushStatement || !strings.HasPrefix(got.Detail, "prod-db (write): DELETE FROM orders") ||
		len(got.Detail) > maxPushDetail+len("…") || !strings.HasSuffix(got.Detail, "…") {
		t.Fatalf("device got %+v (detail %d bytes)", got.Purpose, len(got.Detail))
	}
	if !got.ExpiresAt.Equal(clk.now().Add(2 * time.Minute)) {
		t.Fatalf("expires %s", got.ExpiresAt)
	}
	if st, err := push.StatementStatus(ctx, c.ID, dev.User.ID, "hold_1"); err != nil || st != PushPending {
		t.Fatalf("pending: %s %v", st, err)
	}
	// Another hold, or another purpose, cannot read or use it.
	if _, err := push.StatementStatus(ctx, c.ID, dev.User.ID, "hold_2"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("another hold: %v", err)
	}
	if err := push.VerifyPush(ctx, dev, c.ID); err == nil {
		t.Fatal("a statement push verified a step-up")
	}
	if err := push.Answer(ctx, dev, tok, c.ID, c.Number); err != nil {
		t.Fatal(err)
	}
	if st, err := push.StatementStatus(ctx, c.ID, dev.User.ID, "hold_1"); err != nil || st != PushApproved {
		t.Fatalf("approved: %s %v", st, err)
	}
	if st, _ := push.StatementStatus(ctx, c.ID, dev.User.ID, "hold_1"); st == PushApproved {
		t.Fatal("an approval was used twice")
	}

	// Unanswered, it expires with the hold's timeout.
	c2, err := push.BeginStatement(ctx, dev.User.ID, "hold_3", "prod-db (write): DROP TABLE t", "10.0.0.9:2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(61 * time.Second)
	if st, err := push.StatementStatus(ctx, c2.ID, dev.User.ID, "hold_3"); err != nil || st != PushExpired {
		t.Fatalf("expired: %s %v", st, err)
	}
}
