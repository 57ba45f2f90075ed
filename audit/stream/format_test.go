package stream_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit/stream"
)

func TestOCSFClass(t *testing.T) {
	for _, tc := range []struct {
		action          string
		class, activity int
	}{
		{"login.succeeded", 3002, 1}, {"login.failed", 3002, 1}, {"login.logout", 3002, 2}, {"mfa.enrolled", 3002, 99},
		{"user.created", 3001, 1}, {"user.disabled", 3001, 5}, {"user.enabled", 3001, 2}, {"user.groups_synced", 3001, 99},
		{"grant.created", 6003, 1}, {"db.query", 6003, 2}, {"audit.read", 6003, 2}, {"resource.removed", 6003, 4},
		{"grant.expired", 6003, 3}, {"session.ended", 6003, 3}, {"ssh.cert_issued", 6003, 1}, {"policy.applied", 6003, 1},
		{"connect.refused", 6003, 99},
	} {
		c, a := stream.OCSFClass(tc.action)
		if c != tc.class || a != tc.activity {
			t.Errorf("OCSFClass(%s) = %d, %d; want %d, %d", tc.action, c, a, tc.class, tc.activity)
		}
	}
}

func TestOCSFEvent(t *testing.T) {
	e := airlock.Event{Seq: 42, Time: time.Date(2026, 12, 3, 10, 0, 0, 123456000, time.UTC), Actor: airlock.Actor{ID: "us_1", Name: "alice"},
		Action: "login.failed", SourceAddr: "192.0.2.7:5000", Outcome: airlock.OutcomeFailure, Details: json.RawMessage(`{"method":"password"}`),
		Hash: "ab", PrevHash: "cd"}
	b, err := stream.OCSF(&e)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ClassUID    int    `json:"class_uid"`
		TypeUID     int    `json:"type_uid"`
		CategoryUID int    `json:"category_uid"`
		StatusID    int    `json:"status_id"`
		Time        int64  `json:"time"`
		Message     string `json:"message"`
		User        struct{ Name string }
		SrcEndpoint struct {
			IP   string
			Port int
		} `json:"src_endpoint"`
		Metadata struct {
			Sequence int64
			Version  string
		}
		Unmapped struct {
			Details json.RawMessage
			Hash    string
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.ClassUID != 3002 || got.TypeUID != 300201 || got.CategoryUID != 3 || got.StatusID != 2 || got.Time != e.Time.UnixMilli() ||
		got.User.Name != "alice" || got.SrcEndpoint.IP != "192.0.2.7" || got.SrcEndpoint.Port != 5000 || got.Metadata.Sequence != 42 ||
		got.Metadata.Version != stream.OCSFVersion || string(got.Unmapped.Details) != `{"method":"password"}` || got.Unmapped.Hash != "ab" {
		t.Fatalf("OCSF = %s", b)
	}
}

// TestAirlockFormat: the airlock form is json.Marshal's encoding of the
// event (details verbatim), whatever the strings hold.
func TestAirlockFormat(t *testing.T) {
	for i, e := range []airlock.Event{
		{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC), Actor: airlock.SystemActor, Action: "grant.expired", Outcome: "success", Hash: "h"},
		{Seq: 2, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Actor: airlock.Actor{ID: "u\"1", Name: "ålice\n\u2028"}, Action: "db.query",
			Resource: "prod-db", RequestID: "rq", GrantID: "gr", SessionID: "se", SourceAddr: "[::1]:5", Outcome: "denied",
			Details: json.RawMessage(`{"query":"SELECT 1","n":[1,2]}`), PrevHash: "p", Hash: "h"},
	} {
		got, err := stream.EncodeAirlock(&e)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&e)
		if string(got) != string(want) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
	bad := airlock.Event{Seq: 3, Details: json.RawMessage(`{"a":`)}
	if _, err := stream.EncodeAirlock(&bad); err == nil {
		t.Fatal("invalid details encoded")
	}
}
