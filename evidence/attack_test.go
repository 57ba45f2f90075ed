package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
)

// TestAttackOtherRequestsApproval: a pack signed by the server key (the
// "signed" mode of TestVerifyRefusesTampering: the checks below the
// signature are to hold) swaps the grant's request for another request
// of the log — another reason, approved by someone else. Nothing binds
// the grant to its request: grant.json's request_id is a view, the
// proved grant.activated event (which names req_1) is not compared with
// it, so request.created/request.reviewed events of any request are taken
// as this grant's. The summary then says gr_1 was approved by carol for
// "routine", which no event of the log says.
func TestAttackOtherRequestsApproval(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Another request in the same log, approved by carol.
	al, err := audit.Open(ctx, f.store, audit.Options{Signer: f.key, Now: func() time.Time { return t0.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	carol := airlock.Actor{ID: "usr_c", Name: "carol"}
	for _, e := range []airlock.Event{
		{Actor: airlock.Actor{ID: "usr_a", Name: "alice"}, Action: "request.created", Resource: "prod-db", RequestID: "req_2", Outcome: airlock.OutcomeSuccess,
			Details: airlock.EventDetails("access", "read", "duration", "1h0m0s", "reason", "routine", "ticket", "OPS-9", "rule", "devs-read")},
		{Actor: carol, Action: "request.reviewed", Resource: "prod-db", RequestID: "req_2", Outcome: airlock.OutcomeSuccess,
			Details: airlock.EventDetails("decision", "approve", "comment", "ok", "mfa_method", "webauthn")},
	} {
		if _, err := al.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := al.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pack := f.pack(t)
	all, err := f.store.ListEvents(ctx, airlock.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.LatestTreeCheckpoint(ctx, f.store)
	if err != nil {
		t.Fatal(err)
	}
	bad := rewrite(t, f, pack, signed, func(m map[string][]byte) {
		// events.jsonl: gr_1's own events, req_1's replaced by req_2's.
		var keep []airlock.Event
		for _, e := range all {
			if e.GrantID == "gr_1" || e.GrantID == "" && e.RequestID == "req_2" {
				keep = append(keep, e)
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		var seqs []int64
		for _, e := range keep {
			seqs = append(seqs, e.Seq)
		}
		slices.Sort(seqs)
		for _, s := range seqs {
			for _, e := range keep {
				if e.Seq == s {
					enc.Encode(audit.NewProofEvent(e))
				}
			}
		}
		m[fileEvents] = buf.Bytes()
		bp, err := audit.ProveEvents(ctx, f.store, seqs, cp)
		if err != nil {
			t.Fatal(err)
		}
		m[fileProofs], _ = json.Marshal(bp)
		m[fileGrant] = bytes.Replace(m[fileGrant], []byte(`"request_id": "req_1"`), []byte(`"request_id": "req_2"`), 1)
		m[fileRequest] = []byte(`{"id":"req_2","reason":"routine","ticket":"OPS-9","rule":"devs-read","policy_version":1}`)
		m[fileReviews] = []byte(`[{"request_id":"req_2","reviewer_name":"carol","decision":"approve","mfa_method":"webauthn"}]`)
	})
	sum, err := Verify(bytes.NewReader(bad), int64(len(bad)), f.pub)
	if err == nil {
		t.Errorf("a pack binding gr_1 to req_2 verified; it says:\n%s", sum)
	} else {
		t.Logf("refused: %v", err)
	}
}

func TestAttackPolicyVersionUnproved(t *testing.T) {
	f := newFixture(t)
	pack := f.pack(t)
	bad := rewrite(t, f, pack, signed, func(m map[string][]byte) {
		m[fileRequest] = bytes.Replace(m[fileRequest], []byte(`"policy_version": 1`), []byte(`"policy_version": 7`), 1)
		m[filePolicy] = bytes.Replace(m[filePolicy], []byte(`"version": 1`), []byte(`"version": 7`), 1)
	})
	sum, err := Verify(bytes.NewReader(bad), int64(len(bad)), f.pub)
	if err == nil {
		t.Errorf("a pack claiming policy version %d (the request was decided under 1) verified", sum.PolicyVersion)
	}
}
