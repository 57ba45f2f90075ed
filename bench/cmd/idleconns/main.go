// Command idleconns opens N PostgreSQL connections, runs one query on
// each, prints "ready" and keeps them idle until stdin is closed. The
// bench script uses it to measure a proxy's memory per idle connection.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	n := flag.Int("n", 1000, "connections")
	dsn := flag.String("dsn", "", "connection string")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conns := make([]*pgconn.PgConn, 0, *n)
	for i := 0; i < *n; i++ {
		c, err := pgconn.Connect(ctx, *dsn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: connection %d: %v\n", i+1, err)
			os.Exit(1)
		}
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: query %d: %v\n", i+1, err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close(context.Background())
	}
}
