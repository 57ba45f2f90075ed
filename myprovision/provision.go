package myprovision

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/airlockhq/airlock/pgprovision"
	"github.com/airlockhq/airlock/secrets"
)

// Provisioner makes and drops ephemeral users on one MariaDB server
// (10.4 or later), logged in as the resource's provisioning account. That
// account needs CREATE USER (make, lock and drop users), PROCESS and
// CONNECTION ADMIN granted to it directly (see and kill other users'
// connections; SUPER on older servers), SELECT on the User and Host
// columns of mysql.user and the User, Host, Role and Admin_option columns
// of mysql.roles_mapping (List, Inspect; never the password hashes), and
// each template role WITH ADMIN OPTION (grant it). Terminate refuses to
// report success without PROCESS: the server would show it no connection
// but its own. Its methods are safe for concurrent use: each opens its
// own connection, with an empty sql_mode, so that no server setting
// changes what a statement reads.
type Provisioner struct {
	// Config dials the server as the provisioning account (address, TLS,
	// user and password); it is not modified.
	Config *mysql.Config
}

// ErrBadName is returned for a user or role name that is empty, too long
// or holds a NUL, or a user without Prefix.
var ErrBadName = errors.New("myprovision: invalid user or role name")

// Error is a failed step on the server. It carries the server's SQLSTATE
// (SQLState), so that a refused login (28000) reads as it does from
// PostgreSQL.
type Error struct {
	Step string
	Err  error
	// exists marks CREATE USER of a user that is already there.
	exists bool
}

func (e *Error) Error() string { return "myprovision: " + e.Step + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// SQLState is the server's SQLSTATE for the failure ("" when it is not
// the server's).
func (e *Error) SQLState() string {
	var me *mysql.MySQLError
	if errors.As(e.Err, &me) {
		return string(me.SQLState[:])
	}
	return ""
}

// DuplicateRole reports whether the step made a user that already exists.
func (e *Error) DuplicateRole() bool { return e.exists }

func stepErr(step string, err error) error {
	if err == nil {
		return nil
	}
	var me *mysql.MySQLError
	return &Error{Step: step, Err: err, exists: errors.As(err, &me) && me.Number == erCannotUser && strings.HasPrefix(step, "create user")}
}

// Server error numbers.
const (
	erCannotUser   = 1396 // "Operation CREATE USER / ALTER USER failed for …"
	erNoSuchThread = 1094 // KILL of a connection that has ended
	erNoSuchTable  = 1146
)

func checkName(n string) error {
	if n == "" || len(n) > 128 || strings.IndexByte(n, 0) >= 0 {
		return ErrBadName
	}
	return nil
}

func checkUser(n string) error {
	if len(n) > MaxName || !strings.HasPrefix(n, Prefix) || pgprovision.Sanitize(n) != n {
		return ErrBadName
	}
	return nil
}

// ident quotes a name as a MySQL identifier: backticks, with any backtick
// inside doubled. Backslashes mean nothing there, whatever the sql_mode.
func ident(n string) string { return "`" + strings.ReplaceAll(n, "`", "``") + "`" }

// account is user@'%' as an account name.
func account(user string) string { return ident(user) + "@`%`" }

// nativeHash is pw as mysql_native_password stores it:
// "*" and the upper-case hex of SHA1(SHA1(pw)).
func nativeHash(pw secrets.Secret) string {
	a := sha1.Sum([]byte(pw.Reveal()))
	b := sha1.Sum(a[:])
	return "*" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// NewPassword returns 32 random bytes in hex: never logged, only sealed.
func NewPassword() (secrets.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return secrets.Secret(hex.EncodeToString(b[:])), nil
}

// conn opens one connection as the provisioning account; close gives it
// back.
func (p *Provisioner) conn(ctx context.Context) (*sql.Conn, func(), error) {
	return dial(ctx, p.Config)
}

// asUser runs stmt logged in as user with pw, on the provisioning
// account's address and TLS settings.
func (p *Provisioner) asUser(ctx context.Context, user string, pw secrets.Secret, stmt string) error {
	cfg := p.Config.Clone()
	cfg.User, cfg.Passwd, cfg.DBName = user, pw.Reveal(), ""
	c, release, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer release()
	_, err = c.ExecContext(ctx, stmt)
	return err
}

func dial(ctx context.Context, cfg *mysql.Config) (*sql.Conn, func(), error) {
	cfg = cfg.Clone()
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["sql_mode"] = "''" // no PAD_CHAR_TO_FULL_LENGTH, ANSI_QUOTES…
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, stepErr("connect", err)
	}
	db := sql.OpenDB(connector)
	c, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, stepErr("connect", err)
	}
	return c, func() { c.Close(); db.Close() }, nil
}

// Create makes r as a user with a fresh random password, which it
// returns: r.Template is granted to it and made its default role, and it
// may hold at most r.ConnLimit connections (MAX_USER_CONNECTIONS; 0 or
// less: the server's limit). MySQL has no VALID UNTIL: r.ValidTo is not
// enforced by the server (see the package documentation). A user made
// but not granted its role is dropped again.
func (p *Provisioner) Create(ctx context.Context, r pgprovision.Role) (secrets.Secret, error) {
	if checkUser(r.Name) != nil || checkName(r.Template) != nil {
		return "", ErrBadName
	}
	pw, err := NewPassword()
	if err != nil {
		return "", fmt.Errorf("myprovision: password: %w", err)
	}
	c, release, err := p.conn(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	limit := ""
	if r.ConnLimit > 0 {
		limit = " WITH MAX_USER_CONNECTIONS " + strconv.Itoa(r.ConnLimit)
	}
	if _, err := c.ExecContext(ctx, "CREATE USER "+account(r.Name)+" IDENTIFIED BY PASSWORD '"+nativeHash(pw)+"'"+limit); err != nil {
		return "", stepErr("create user "+r.Name, err)
	}
	if _, err := c.ExecContext(ctx, "GRANT "+ident(r.Template)+" TO "+account(r.Name)); err != nil {
		p.undo(ctx, r.Name)
		return "", stepErr("grant "+r.Template+" to "+r.Name, err)
	}
	// The default role is set by the user itself: setting another
	// user's would need write access to the mysql schema, which would let
	// the provisioning account give itself any right.
	if err := p.asUser(ctx, r.Name, pw, "SET DEFAULT ROLE "+ident(r.Template)); err != nil {
		p.undo(ctx, r.Name)
		return "", stepErr("set the default role of "+r.Name, err)
	}
	return pw, nil
}

// undo drops a user Create made but could not finish, over a connection
// of its own (the one Create used may be the reason it failed). What
// remains when even that fails has a password nobody holds, and the
// reconciler drops it.
func (p *Provisioner) undo(ctx context.Context, user string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	p.Drop(ctx, user, "", nil)
}

// Terminate locks user's accounts (every host), so that no new login
// slips in, then kills every connection of the user on the server,
// whatever it connected through, and returns how many it killed.
func (p *Provisioner) Terminate(ctx context.Context, user string) (int, error) {
	if err := checkUser(user); err != nil {
		return 0, err
	}
	c, release, err := p.conn(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	hosts, err := accountsOf(ctx, c, []any{user})
	if err != nil {
		return 0, err
	}
	if len(hosts[user]) > 0 {
		if _, err := c.ExecContext(ctx, "ALTER USER IF EXISTS "+strings.Join(hosts[user], ", ")+" ACCOUNT LOCK"); err != nil {
			return 0, stepErr("lock "+user, err)
		}
	}
	if err := seesAll(ctx, c); err != nil {
		return 0, err
	}
	ids, err := processIDs(ctx, c, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		_, err := c.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(id, 10))
		switch {
		case err == nil:
			n++
		case !isNumber(err, erNoSuchThread): // one that ended meanwhile is not an error
			return n, stepErr("kill connection "+strconv.FormatUint(id, 10)+" of "+user, err)
		}
	}
	return n, nil
}

func processIDs(ctx context.Context, c *sql.Conn, user string) ([]uint64, error) {
	rows, err := c.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()", user)
	if err != nil {
		return nil, stepErr("list connections of "+user, err)
	}
	defer rows.Close()
	var ids []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, stepErr("list connections of "+user, err)
		}
		ids = append(ids, id)
	}
	return ids, stepErr("list connections of "+user, rows.Err())
}

func isNumber(err error, n uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == n
}

// Drop removes user's accounts, every host (DROP USER IF EXISTS, so Drop
// can be retried until it succeeds). Connections should be killed first
// (Terminate): MySQL keeps a dropped user's open connections. owner and
// dbs are PostgreSQL's (reassigning objects) and unused here: MySQL
// objects have no owner.
func (p *Provisioner) Drop(ctx context.Context, user, owner string, dbs []string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	c, release, err := p.conn(ctx)
	if err != nil {
		return err
	}
	defer release()
	hosts, err := accountsOf(ctx, c, []any{user})
	if err != nil {
		return err
	}
	for _, a := range hosts[user] {
		if _, err := c.ExecContext(ctx, "DROP USER IF EXISTS "+a); err != nil {
			return stepErr("drop user "+user, err)
		}
	}
	return nil
}

// accountsOf returns the accounts (quoted user@host) of each of users
// (strings) on the server, any host; roles (an empty host) are not
// accounts.
func accountsOf(ctx context.Context, c *sql.Conn, users []any) (map[string][]string, error) {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(users)), ", ")
	rows, err := c.QueryContext(ctx, "SELECT User, Host FROM mysql.user WHERE User IN ("+marks+") AND Host <> '' ORDER BY User, Host", users...)
	if err != nil {
		return nil, stepErr("look up accounts", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var u, h string
		if err := rows.Scan(&u, &h); err != nil {
			return nil, stepErr("look up accounts", err)
		}
		out[u] = append(out[u], ident(u)+"@"+ident(h))
	}
	return out, stepErr("look up accounts", rows.Err())
}

// ErrCannotSee is returned by Terminate and DropMany when the
// provisioning account lacks PROCESS (and SUPER): the server shows it
// only its own connections, so it could end none of the user's.
var ErrCannotSee = errors.New("myprovision: the provisioning account lacks the PROCESS privilege: it cannot see, so cannot end, other users' connections")

// seesAll checks that the account may see every connection.
func seesAll(ctx context.Context, c *sql.Conn) error {
	have, _, err := rights(ctx, c)
	if err != nil {
		return err
	}
	if !have["PROCESS"] && !have["SUPER"] {
		return ErrCannotSee
	}
	return nil
}

// rights returns the global privileges granted to the current account
// directly, and its user name.
func rights(ctx context.Context, c *sql.Conn) (map[string]bool, string, error) {
	var cur string
	if err := c.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&cur); err != nil {
		return nil, "", stepErr("read privileges", err)
	}
	at := strings.LastIndexByte(cur, '@')
	if at < 0 {
		return nil, "", stepErr("read privileges", fmt.Errorf("unexpected CURRENT_USER() %q", cur))
	}
	user := cur[:at]
	// information_schema spells the grantee 'user'@'host', as is.
	rows, err := c.QueryContext(ctx, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?", "'"+user+"'@'"+cur[at+1:]+"'")
	if err != nil {
		return nil, "", stepErr("read privileges", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, "", stepErr("read privileges", err)
		}
		have[p] = true
	}
	return have, user, stepErr("read privileges", rows.Err())
}

// List returns the users on the server (accounts of any host; not roles)
// whose names start with Prefix: those this package made, for
// reconciliation (Drop removes every host's account of a name).
func (p *Provisioner) List(ctx context.Context) ([]string, error) {
	c, release, err := p.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return listUsers(ctx, c)
}

func listUsers(ctx context.Context, c *sql.Conn) ([]string, error) {
	rows, err := c.QueryContext(ctx, "SELECT DISTINCT User FROM mysql.user WHERE LEFT(User, ?) = ? AND Host <> '' ORDER BY User", len(Prefix), Prefix)
	if err != nil {
		return nil, stepErr("list users", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, stepErr("list users", err)
		}
		names = append(names, n)
	}
	return names, stepErr("list users", rows.Err())
}

// Inspect reports the provisioning state for templates: the account
// Inspect logged in as and whether it holds CREATE USER (CreateRole),
// which templates (and owner, when set) do not exist, and which users
// Airlock did not make hold a template directly (Drift; MariaDB's
// mysql.roles_mapping, else MySQL's mysql.role_edges). Holders WITH ADMIN
// OPTION are not drift: a role's creator holds it so (as the provisioning
// account does), and PostgreSQL's Inspect leaves superusers out alike.
func (p *Provisioner) Inspect(ctx context.Context, templates []string, owner string) (*pgprovision.Report, error) {
	c, release, err := p.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rep := &pgprovision.Report{}
	have, user, err := rights(ctx, c)
	if err != nil {
		return nil, err
	}
	rep.Provisioner, rep.CreateRole = user, have["CREATE USER"]
	if !have["PROCESS"] && !have["SUPER"] {
		rep.MissingRights = append(rep.MissingRights, "PROCESS (to see the connections it must end)")
	}
	if !have["CONNECTION ADMIN"] && !have["SUPER"] {
		rep.MissingRights = append(rep.MissingRights, "CONNECTION ADMIN (to end them)")
	}
	if err := mariaDB(ctx, c); err != nil {
		rep.MissingRights = append(rep.MissingRights, err.Error())
	}
	var n int
	names := append([]string(nil), templates...)
	if owner != "" {
		names = append(names, owner)
	}
	for _, name := range names {
		if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", name).Scan(&n); err != nil {
			return nil, stepErr("inspect", err)
		}
		if n == 0 {
			rep.Missing = append(rep.Missing, name)
		}
	}
	for _, q := range []string{
		"SELECT User, Role FROM mysql.roles_mapping WHERE Role = ? AND User <> ? AND LEFT(User, ?) <> ? AND User <> '' AND Admin_option <> 'Y' ORDER BY User",
		"SELECT TO_USER, FROM_USER FROM mysql.role_edges WHERE FROM_USER = ? AND TO_USER <> ? AND LEFT(TO_USER, ?) <> ? AND WITH_ADMIN_OPTION <> 'Y' ORDER BY TO_USER",
	} {
		rep.Drift, err = drift(ctx, c, q, templates, user)
		if !isNumber(err, erNoSuchTable) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if rep.Roles, err = listUsers(ctx, c); err != nil {
		return nil, err
	}
	return rep, nil
}

func drift(ctx context.Context, c *sql.Conn, q string, templates []string, self string) ([]pgprovision.Member, error) {
	var out []pgprovision.Member
	for _, t := range templates {
		rows, err := c.QueryContext(ctx, q, t, self, len(Prefix), Prefix)
		if err != nil {
			return nil, stepErr("inspect", err)
		}
		for rows.Next() {
			var m pgprovision.Member
			if err := rows.Scan(&m.Role, &m.Template); err != nil {
				rows.Close()
				return nil, stepErr("inspect", err)
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, stepErr("inspect", err)
		}
	}
	return out, nil
}

// SetPassword gives the provisioning account itself password pw, sent as
// its mysql_native_password hash: the old one stops working at once.
func (p *Provisioner) SetPassword(ctx context.Context, pw secrets.Secret) error {
	if len(pw) < 32 {
		return errors.New("myprovision: a provisioning password must be at least 32 characters")
	}
	c, release, err := p.conn(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := mariaDB(ctx, c); err != nil {
		return err
	}
	// SET PASSWORD takes the hash as a literal on MariaDB. (MariaDB 10.11
	// accepts ALTER USER CURRENT_USER() IDENTIFIED BY PASSWORD '*…' without
	// an error and changes nothing: TestSetPassword pins that the
	// password really changed.)
	_, err = c.ExecContext(ctx, "SET PASSWORD = '"+nativeHash(pw)+"'")
	return stepErr("set the provisioning account's password", err)
}

// mariaDB checks that the server is MariaDB 10.4 or later: on MySQL,
// SET PASSWORD = '*…' would make the hash itself the password, and
// IDENTIFIED BY PASSWORD is gone from 8.0.
func mariaDB(ctx context.Context, c *sql.Conn) error {
	var v string
	if err := c.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return stepErr("read the server version", err)
	}
	major, minor := 0, 0
	fmt.Sscanf(v, "%d.%d", &major, &minor)
	if !strings.Contains(v, "MariaDB") || major < 10 || major == 10 && minor < 4 {
		return fmt.Errorf("myprovision: ephemeral users need MariaDB 10.4 or later; this server is %q", v)
	}
	return nil
}
