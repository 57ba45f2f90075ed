package audit_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
)

func ExampleHash() {
	e := airlock.Event{
		Seq: 7, Time: time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC),
		Actor: airlock.Actor{ID: "u1", Name: "alice"}, Action: "grant.created", Resource: "prod-db",
		RequestID: "r1", GrantID: "g1", SessionID: "s1", SourceAddr: "1.2.3.4",
		Outcome: "success", Details: json.RawMessage(`{"a":1}`),
		PrevHash: "0000000000000000000000000000000000000000000000000000000000000000",
	}
	fmt.Println(audit.Hash(e))
	// Output: 2c367f8e5c4c2765d595b8776f77b627d174e7204d6450391dabb1ac5f2ce193
}

func ExampleCheckpointMessage() {
	at := time.Date(2025, 3, 1, 12, 0, 9, 500000000, time.UTC)
	fmt.Printf("%q\n", audit.CheckpointMessage(1000, "5be1", at))
	// Output: "airlock-checkpoint-v1\n1000\n5be1\n2025-03-01T12:00:09.5Z"
}
