package sqlstore

import (
	"time"

	"github.com/airlockhq/airlock"
)

// Database roles (issue 18) and leases.

const DBRoleCols = `grant_id, resource, role, password, created_at, dropped_at`

func ScanDBRole(s Scanner) (*airlock.DBRole, error) {
	r := &airlock.DBRole{}
	err := s.Scan(&r.GrantID, &r.Resource, &r.Role, &r.Password, Time(&r.CreatedAt), Time(&r.DroppedAt))
	return r, err
}

// PutDBRole inserts r or replaces its grant's row.
func (d Dialect) PutDBRole(r *airlock.DBRole) Stmt {
	return Stmt{`INSERT INTO db_roles (` + DBRoleCols + `) VALUES ($1,$2,$3,$4,$5,$6)
ON CONFLICT (grant_id) DO UPDATE SET resource = excluded.resource, role = excluded.role, password = excluded.password,
	created_at = excluded.created_at, dropped_at = excluded.dropped_at`,
		[]any{r.GrantID, r.Resource, r.Role, nonNil(r.Password), d.Time(r.CreatedAt), d.Time(r.DroppedAt)}}
}

func (d Dialect) DBRoleByGrant(grantID string) Stmt {
	return Stmt{`SELECT ` + DBRoleCols + ` FROM db_roles WHERE grant_id = $1`, []any{grantID}}
}

func (d Dialect) ListDBRoles(dropped bool) Stmt {
	where := ` WHERE dropped_at IS NULL`
	if dropped {
		where = ``
	}
	return Stmt{`SELECT ` + DBRoleCols + ` FROM db_roles` + where + ` ORDER BY created_at, grant_id`, nil}
}

func (d Dialect) SetDBRoleDropped(grantID string, at time.Time) Stmt {
	return Stmt{`UPDATE db_roles SET dropped_at = $2 WHERE grant_id = $1 AND dropped_at IS NULL`, []any{grantID, d.Time(at)}}
}

// AcquireLease is one upsert that takes the lease only when it is free or
// already the holder's: the engine serialises writers of the row, so of
// concurrent callers for a free lease one updates it and the others see
// it held (no row returned).
func (d Dialect) AcquireLease(name, holder string, now, until time.Time) Stmt {
	return Stmt{`INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
	WHERE leases.holder = excluded.holder OR leases.expires_at <= $3
RETURNING holder`, []any{name, holder, d.Time(now), d.Time(until)}}
}

func (d Dialect) ReleaseLease(name, holder string) Stmt {
	return Stmt{`DELETE FROM leases WHERE name = $1 AND holder = $2`, []any{name, holder}}
}
