package myprovision

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock/pgprovision"
)

// DefaultBatchSize is how many users one lock statement and one
// connection listing name.
const DefaultBatchSize = 500

// DropMany terminates and drops users as Terminate then Drop would, for
// each, over one connection: per batch of DefaultBatchSize one ACCOUNT
// LOCK statement for all, one PROCESSLIST read and a KILL per connection,
// then one DROP USER per user, so that a user another caller dropped
// first is reported Absent (this call dropped nothing). A batch whose
// lock or listing fails is done again user by user (Terminate). It
// returns one Dropped per user, in order, and an error only when no
// connection could be opened (then nothing was done). owner and dbs are
// unused (Drop).
func (p *Provisioner) DropMany(ctx context.Context, users []string, owner string, dbs []string) ([]pgprovision.Dropped, error) {
	out := make([]pgprovision.Dropped, len(users))
	var ok []int
	for i, u := range users {
		out[i].Role = u
		if err := checkUser(u); err != nil {
			out[i].Err, out[i].Step = err, "terminate"
			continue
		}
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		return out, nil
	}
	c, release, err := p.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	for start := 0; start < len(ok); start += DefaultBatchSize {
		idx := ok[start:min(start+DefaultBatchSize, len(ok))]
		args := make([]any, len(idx))
		for j, i := range idx {
			args[j] = users[i]
		}
		accounts, err := accountsOf(ctx, c, args)
		var killed map[string]int
		if err == nil {
			killed, err = terminateBatch(ctx, c, accounts, args)
		}
		for _, i := range idx {
			d := &out[i]
			if err == nil {
				d.Terminated, d.Backends = true, killed[d.Role]
			} else if d.Backends, d.Err = p.Terminate(ctx, d.Role); d.Err != nil {
				d.Step = "terminate"
			} else {
				d.Terminated = true
			}
		}
		for _, i := range idx {
			d := &out[i]
			if !d.Terminated {
				continue
			}
			// One DROP USER per account, without IF EXISTS: an account
			// another caller dropped first answers 1396, and a user
			// none of whose accounts this call dropped is Absent.
			dropped := false
			for _, a := range accounts[d.Role] {
				_, err := c.ExecContext(ctx, "DROP USER "+a)
				switch {
				case err == nil:
					dropped = true
				case !isNumber(err, erCannotUser):
					d.Err, d.Step = stepErr("drop user "+d.Role, err), "drop"
				}
			}
			d.Absent = !dropped && d.Err == nil
		}
	}
	return out, nil
}

// terminateBatch locks the accounts and kills every connection of their
// users (args), returning how many it killed per user; without PROCESS
// it fails (ErrCannotSee) rather than kill nothing.
func terminateBatch(ctx context.Context, c *sql.Conn, accounts map[string][]string, args []any) (map[string]int, error) {
	var all []string
	for _, u := range args {
		all = append(all, accounts[u.(string)]...)
	}
	if len(all) > 0 {
		if _, err := c.ExecContext(ctx, "ALTER USER IF EXISTS "+strings.Join(all, ", ")+" ACCOUNT LOCK"); err != nil {
			return nil, err
		}
	}
	if err := seesAll(ctx, c); err != nil {
		return nil, err
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	rows, err := c.QueryContext(ctx, "SELECT ID, USER FROM information_schema.PROCESSLIST WHERE USER IN ("+marks+") AND ID <> CONNECTION_ID()", args...)
	if err != nil {
		return nil, err
	}
	type conn struct {
		id   uint64
		user string
	}
	var found []conn
	for rows.Next() {
		var k conn
		if err := rows.Scan(&k.id, &k.user); err != nil {
			rows.Close()
			return nil, err
		}
		found = append(found, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	killed := map[string]int{}
	for _, k := range found {
		_, err := c.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(k.id, 10))
		switch {
		case err == nil:
			killed[k.user]++
		case !isNumber(err, erNoSuchThread):
			return nil, err
		}
	}
	return killed, nil
}
