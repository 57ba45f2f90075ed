package pgprovision

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultBatchSize is how many roles one statement of DropMany names when
// Provisioner.BatchSize is not set: 500 quoted names make a statement of
// some 30 KB at most.
const DefaultBatchSize = 500

// Dropped is what DropMany did to one role.
type Dropped struct {
	Role string
	// Terminated reports that the role was locked (NOLOGIN) and its
	// backends ended; Backends is how many were signalled.
	Terminated bool
	Backends   int
	// Absent reports that the role did not exist when it was to be
	// dropped (another caller had dropped it first): this call dropped
	// nothing.
	Absent bool
	// Err is nil when the role is gone; otherwise Step names the step
	// that failed ("terminate" or "drop").
	Err  error
	Step string
}

// DropMany terminates and drops roles as Terminate then Drop would, for
// each role, but batched: at most p.BatchSize roles a statement, over one
// connection for the server and one per database of dbs for the whole
// call. A batch whose statement fails is done again role by role
// (Terminate, Drop), so one role that cannot be dropped does not keep
// the others. It returns one Dropped per role, in order, and an error
// only when no connection to the server could be opened (then nothing was
// done). When a database of dbs cannot be reached the roles are still
// terminated (as Terminate would), and their Err is that, at step "drop".
func (p *Provisioner) DropMany(ctx context.Context, roles []string, owner string, dbs []string) ([]Dropped, error) {
	out := make([]Dropped, len(roles))
	for i, r := range roles {
		out[i].Role = r
	}
	if owner != "" {
		if err := checkName(owner); err != nil {
			return nil, err
		}
	}
	var ok []int // indexes of valid names
	for i, r := range roles {
		if err := checkName(r); err != nil {
			out[i].Err, out[i].Step = err, "terminate"
			continue
		}
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		return out, nil
	}
	conn, release, err := p.own(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer release()
	dbConns := make([]*pgx.Conn, len(dbs))
	defer func() {
		for _, c := range dbConns {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	// The databases' connections are opened after the first batch is
	// terminated: a database that cannot be reached keeps the roles from
	// being dropped, not their backends from being ended.
	var dbErr error
	opened := false
	openDBs := func() error {
		if opened {
			return dbErr
		}
		opened = true
		for i, db := range dbs {
			c, err := p.Connect(ctx, db)
			if err != nil {
				dbErr = fmt.Errorf("pgprovision: connect to %s: %w", db, err)
				return dbErr
			}
			dbConns[i] = c
		}
		return nil
	}
	size := p.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	for start := 0; start < len(ok); start += size {
		idx := ok[start:min(start+size, len(ok))]
		names := make([]string, len(idx))
		for j, i := range idx {
			names[j] = roles[i]
		}
		n, err := terminateBatch(ctx, conn, names)
		if err != nil {
			for _, i := range idx {
				d := &out[i]
				if d.Backends, d.Err = p.Terminate(ctx, d.Role); d.Err != nil {
					d.Step = "terminate"
				} else {
					d.Terminated = true
				}
			}
		} else {
			for _, i := range idx {
				out[i].Terminated, out[i].Backends = true, n[roles[i]]
			}
		}
		var live []int // terminated: to drop
		for _, i := range idx {
			if out[i].Terminated {
				live = append(live, i)
			}
		}
		if len(live) == 0 {
			continue
		}
		names = names[:0]
		for _, i := range live {
			names = append(names, roles[i])
		}
		if err := openDBs(); err != nil {
			for _, i := range live {
				out[i].Err, out[i].Step = err, "drop"
			}
			continue
		}
		have, err := dropBatch(ctx, conn, dbConns, dbs, names, owner)
		if err != nil {
			for _, i := range live {
				if err := p.Drop(ctx, roles[i], owner, dbs); err != nil {
					out[i].Err, out[i].Step = err, "drop"
				}
			}
			continue
		}
		for _, i := range live {
			out[i].Absent = !have[roles[i]]
		}
	}
	return out, nil
}

// existing returns those of names that are roles on the server.
func existing(ctx context.Context, conn *pgx.Conn, names []string) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1::text[]) ORDER BY 1", names)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}

// terminateBatch locks every one of names that exists (NOLOGIN, one
// implicit transaction, committed before any backend is signalled so that
// none logs in between) and ends their backends; it returns the count per
// role. A name that is not a role counts 0, as in Terminate.
func terminateBatch(ctx context.Context, conn *pgx.Conn, names []string) (map[string]int, error) {
	have, err := existing(ctx, conn, names)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: look up roles: %w", err)
	}
	if len(have) > 0 {
		var b strings.Builder
		for _, n := range have {
			b.WriteString("ALTER ROLE " + ident(n) + " NOLOGIN;")
		}
		if _, err := conn.Exec(ctx, b.String(), pgx.QueryExecModeSimpleProtocol); err != nil {
			return nil, fmt.Errorf("pgprovision: lock roles: %w", err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT usename::text, count(*) FILTER (WHERE pg_terminate_backend(pid))::int FROM pg_stat_activity
		WHERE usename = ANY($1::text[]) AND pid <> pg_backend_pid() GROUP BY usename`, names)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: terminate backends: %w", err)
	}
	n := map[string]int{}
	var role string
	var c int
	if _, err := pgx.ForEachRow(rows, []any{&role, &c}, func() error { n[role] = c; return nil }); err != nil {
		return nil, fmt.Errorf("pgprovision: terminate backends: %w", err)
	}
	return n, nil
}

// dropBatch drops names: in each database what they own is reassigned to
// owner (when set) and the rest dropped, one implicit transaction per
// database; then the roles, in one statement. It returns the names that
// were roles when it began: those it dropped.
func dropBatch(ctx context.Context, conn *pgx.Conn, dbConns []*pgx.Conn, dbs, names []string, owner string) (map[string]bool, error) {
	have, err := existing(ctx, conn, names)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: look up roles: %w", err)
	}
	if len(have) == 0 {
		return nil, nil
	}
	list := identList(have)
	stmt := "DROP OWNED BY " + list
	if owner != "" {
		stmt = "REASSIGN OWNED BY " + list + " TO " + ident(owner) + "; " + stmt
	}
	for i, c := range dbConns {
		if _, err := c.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
			return nil, fmt.Errorf("pgprovision: drop owned in %s: %w", dbs[i], err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+list, pgx.QueryExecModeSimpleProtocol); err != nil {
		return nil, fmt.Errorf("pgprovision: drop roles: %w", err)
	}
	dropped := make(map[string]bool, len(have))
	for _, n := range have {
		dropped[n] = true
	}
	return dropped, nil
}
