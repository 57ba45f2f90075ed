package sqlstore

import (
	"context"
	"time"

	"github.com/airlockhq/airlock"
)

// GroupMembers is ListGroups from the users ordered by name: every group
// in use with its member names, sorted.
func GroupMembers(users []*airlock.User) map[string][]string {
	out := map[string][]string{}
	for _, u := range users { // ordered by name, so members come out sorted
		for _, g := range u.Groups {
			out[g] = append(out[g], u.Name)
		}
	}
	return out
}

// KV.

func (d Dialect) PutKV(key string, value []byte, expiresAt time.Time) Stmt {
	if value == nil {
		value = []byte{}
	}
	return Stmt{`INSERT INTO kv (key, value, expires_at) VALUES ($1,$2,$3)
		ON CONFLICT (key) DO UPDATE SET value=excluded.value, expires_at=excluded.expires_at`, []any{key, value, d.Time(expiresAt)}}
}

// GetKV returns the value under key, or ENOTFOUND if missing or expired at
// now.
func (d Dialect) GetKV(ctx context.Context, row RowFunc, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := row(ctx, `SELECT value FROM kv WHERE key=$1 AND (expires_at IS NULL OR expires_at > $2)`, key, d.Time(now)).Scan(&v)
	if err != nil {
		return nil, NotFound(err, "key %q not found", key)
	}
	return nonNil(v), nil
}

// TakeKV deletes key and returns its value; ENOTFOUND if it was missing or
// expired at now. One DELETE … RETURNING, so of concurrent takers only one
// gets the value.
func TakeKV(ctx context.Context, row RowFunc, key string, now time.Time) ([]byte, error) {
	var v []byte
	var expires time.Time
	err := row(ctx, `DELETE FROM kv WHERE key=$1 RETURNING value, expires_at`, key).Scan(&v, Time(&expires))
	if err != nil {
		return nil, NotFound(err, "key %q not found", key)
	}
	if !expires.IsZero() && !expires.After(now) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "key %q not found", key)
	}
	return nonNil(v), nil
}

func (d Dialect) ScanKV(prefix string, now time.Time) Stmt {
	return Stmt{`SELECT key, value FROM kv WHERE substr(key, 1, length($1)) = $1
		AND (expires_at IS NULL OR expires_at > $2)`, []any{prefix, d.Time(now)}}
}

// CollectKV reads ScanKV's rows.
func CollectKV(rows Rows) (map[string][]byte, error) {
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = nonNil(v)
	}
	return out, rows.Err()
}

// nonNil returns v, or an empty value for NULL: a stored value is never
// nil.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// Policy.

// CurrentPolicySQL selects the highest policy version; scan it with
// ScanPolicy.
const CurrentPolicySQL = `SELECT version, document, applied_by, applied_at, sha256 FROM policies ORDER BY version DESC LIMIT 1`

func ScanPolicy(s Scanner) (*airlock.PolicyVersion, error) {
	p := &airlock.PolicyVersion{}
	if err := s.Scan(&p.Version, &p.Document, &p.AppliedBy, Time(&p.AppliedAt), &p.SHA256); err != nil {
		return nil, NotFound(err, "no policy has been applied")
	}
	return p, nil
}
