package pgproxy

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// BenchmarkSimpleQuery measures one simple-protocol round trip through the
// gateway against a real PostgreSQL, with standard and strict audit (the
// sink confirms at once, so this is the gateway's own cost).
func BenchmarkSimpleQuery(b *testing.B) {
	for _, strict := range []bool{false, true} {
		name := map[bool]string{false: "standard", true: "strict"}[strict]
		b.Run(name, func(b *testing.B) {
			e := newEnv(b)
			e.target("read-token", func(tg *Target) { tg.StrictAudit = strict })
			c := e.connect(b, "read-token")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Exec(b.Context(), "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
