package evidence

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/airlockhq/airlock"
)

// BenchmarkPack100k: the evidence pack of a grant with 100,000 statements
// (issue 20's target: ≤ 5 s), written and then verified offline. The
// statements are appended through the log's pipeline (group commit), as
// the gateways write them.
//
//	go test -run '^$' -bench BenchmarkPack100k -benchtime 3x ./evidence
func BenchmarkPack100k(b *testing.B) {
	f := newFixtureN(b, 100_000)
	ctx := context.Background()
	var size int
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			if err := Write(ctx, f.src, f.grant.ID, &buf); err != nil {
				b.Fatal(err)
			}
			size = buf.Len()
		}
		b.ReportMetric(float64(size)/(1<<20), "MiB/pack")
	})
	var pack bytes.Buffer
	if err := Write(ctx, f.src, f.grant.ID, &pack); err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			sum, err := Verify(bytes.NewReader(pack.Bytes()), int64(pack.Len()), f.pub)
			if err != nil {
				b.Fatal(err)
			}
			if sum.Sessions[0].Statements < 100_000 {
				b.Fatalf("statements %d", sum.Sessions[0].Statements)
			}
		}
	})
}

// statementsHook, when set, adds n more db.query events of the fixture's
// database session before its end.
func extraStatements(n int) func(submit func(airlock.Event)) {
	return func(submit func(airlock.Event)) {
		for i := range n {
			submit(airlock.Event{Actor: airlock.Actor{ID: "usr_a", Name: "alice"}, Action: "db.query", Resource: "prod-db", GrantID: "gr_1",
				SessionID: "ses_db", Outcome: airlock.OutcomeSuccess, Details: []byte(fmt.Sprintf(`{"query":"select * from orders where id = %d","rows":1}`, i))})
		}
	}
}
