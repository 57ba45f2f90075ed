package api

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
)

// TestClientEvidenceRefusals: the evidence route through the typed
// client refuses non-auditors, and answers a clean ENOTFOUND (JSON, no
// zip begun) for a grant that does not exist or an ID that cannot be one.
// The pack itself is tested in package evidence and end to end in
// cmd/airlock (TestE2EEvidencePack).
func TestClientEvidenceRefusals(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	if _, err := env.admin.CreateUser(ctx, CreateUserRequest{Name: "alice", Password: "alice password 1", Groups: []string{"devs"}}); err != nil {
		t.Fatal(err)
	}
	alice := env.enroll("alice", "alice password 1")
	_, err := alice.Evidence(ctx, "gr_abc")
	wantCode(t, "alice's evidence", err, airlock.EFORBIDDEN)
	for _, id := range []string{"gr_nope", "../../etc", `gr_x"; filename="evil`} {
		_, err := env.admin.Evidence(ctx, id)
		wantCode(t, "evidence of "+id, err, airlock.ENOTFOUND)
	}
}

// brokenPack writes the start of a zip, then fails: a store read that
// broke off under the export.
type brokenPack struct{}

func (brokenPack) WriteTo(_ context.Context, w io.Writer) error {
	if _, err := w.Write([]byte("PK\x03\x04 the start of a pack")); err != nil {
		return err
	}
	return errors.New("read the grant's events: the store went away")
}

// TestEvidenceExportBrokenOff: a pack whose writing fails after it began
// reaches the client as a broken response, never one that ends cleanly,
// and the log records the failure after the export's own event, so it
// does not show a whole pack handed out. The error is recorded as
// airlock.ErrorMessage gives it (an internal error's text stays out).
func TestEvidenceExportBrokenOff(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	env.srv.Audit.Evidence = func(context.Context, string) (EvidencePack, error) { return brokenPack{}, nil }
	// The client sees the connection close, before the headers (what was
	// written is still buffered) or in the body.
	body, err := env.admin.Evidence(ctx, "gr_abc")
	if err == nil {
		_, err = io.ReadAll(body)
		body.Close()
	}
	if err == nil {
		t.Fatal("the broken pack's response ended cleanly")
	}
	var actions []string
	var failed airlock.Event
	if err := env.store.ScanEvents(ctx, 0, func(e airlock.Event) error {
		if strings.HasPrefix(e.Action, "evidence.") {
			actions = append(actions, e.Action)
			if e.Action == "evidence.export_failed" {
				failed = e
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Each try (the client may retry a GET whose connection closed before
	// any answer) is one export begun and its failure.
	pair := []string{"evidence.exported", "evidence.export_failed"}
	if len(actions) == 0 || len(actions)%2 != 0 {
		t.Fatalf("evidence events %v, want pairs of %v", actions, pair)
	}
	for i := 0; i < len(actions); i += 2 {
		if !slices.Equal(actions[i:i+2], pair) {
			t.Fatalf("evidence events %v, want pairs of %v", actions, pair)
		}
	}
	if failed.Outcome != airlock.OutcomeFailure || !strings.Contains(string(failed.Details), `"grant":"gr_abc"`) ||
		!strings.Contains(string(failed.Details), `"error":"`) || failed.Actor.Name != "admin" {
		t.Fatalf("evidence.export_failed: %+v %s", failed, failed.Details)
	}
}
