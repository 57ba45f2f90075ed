package api

import (
	"context"
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
