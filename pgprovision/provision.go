package pgprovision

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/secrets"
)

// Provisioner makes and drops ephemeral login roles on one PostgreSQL
// server, logged in as the resource's provisioning role (one with
// CREATEROLE; PostgreSQL 16 and later also want it to hold the templates
// WITH ADMIN OPTION — the tests grant that, and run on PostgreSQL 15).
// Its methods are safe for concurrent use: each opens its own connection
// or borrows one from Acquire.
type Provisioner struct {
	// Connect opens a connection as the provisioning role to database
	// db ("" for the provisioning connection's own).
	Connect func(ctx context.Context, db string) (*pgx.Conn, error)
	// Acquire, when set, lends a connection as the provisioning role to
	// its own database, given back with release (Pools.Acquirer): Create,
	// Terminate, List and the server-wide steps of Drop and DropMany use
	// it instead of Connect(ctx, "").
	Acquire func(ctx context.Context) (conn *pgx.Conn, release func(), err error)
	// BatchSize bounds how many roles one statement of DropMany names;
	// 0 or less means DefaultBatchSize.
	BatchSize int
}

// Role is an ephemeral login role to make.
type Role struct {
	Name     string    // RoleName(user, grant)
	Template string    // the access level's template role (privileges)
	ValidTo  time.Time // the grant's ends_at
	// ConnLimit is the role's CONNECTION LIMIT; 0 or less means -1 (none).
	ConnLimit int
}

// ErrBadName is returned for a role or template name that is empty or
// longer than PostgreSQL's 63 bytes, or a role without Prefix.
var ErrBadName = errors.New("pgprovision: invalid role name")

func checkName(n string) error {
	if n == "" || len(n) > maxName || strings.IndexByte(n, 0) >= 0 {
		return ErrBadName
	}
	return nil
}

// own returns a connection to the provisioning connection's own
// database, from Acquire when set, and what gives it back.
func (p *Provisioner) own(ctx context.Context) (*pgx.Conn, func(), error) {
	if p.Acquire != nil {
		return p.Acquire(ctx)
	}
	conn, err := p.Connect(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	return conn, func() { conn.Close(context.WithoutCancel(ctx)) }, nil
}

func ident(n string) string { return pgx.Identifier{n}.Sanitize() }

// newPassword returns 32 random bytes in hex: never logged, only sealed.
func newPassword() (secrets.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return secrets.Secret(hex.EncodeToString(b[:])), nil
}

// Create makes r as a login role with a fresh random password, which it
// returns. The role is usable only until r.ValidTo (VALID UNTIL), holds
// only the template's privileges (IN ROLE, INHERIT) and at most
// r.ConnLimit connections. Errors name the step, never the password.
func (p *Provisioner) Create(ctx context.Context, r Role) (secrets.Secret, error) {
	if err := checkName(r.Name); err != nil || !strings.HasPrefix(r.Name, Prefix) {
		return "", ErrBadName
	}
	if err := checkName(r.Template); err != nil {
		return "", ErrBadName
	}
	pw, err := newPassword()
	if err != nil {
		return "", fmt.Errorf("pgprovision: password: %w", err)
	}
	verifier, err := scramVerifier(pw)
	if err != nil {
		return "", fmt.Errorf("pgprovision: password: %w", err)
	}
	limit := r.ConnLimit
	if limit <= 0 {
		limit = -1
	}
	// The password goes as a SCRAM-SHA-256 verifier, never in the clear:
	// the server logs a failed statement (log_min_error_statement) and,
	// with log_statement = ddl, every CREATE ROLE. The verifier, the
	// timestamp and the limit are ours: the only literals here. CREATE
	// ROLE takes no bind parameters. Both statements run in one
	// implicit transaction (simple protocol).
	stmt := "CREATE ROLE " + ident(r.Name) + " LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION" +
		" CONNECTION LIMIT " + strconv.Itoa(limit) +
		" PASSWORD '" + verifier + "'" +
		" VALID UNTIL '" + r.ValidTo.UTC().Format("2006-01-02 15:04:05.999999") + "+00'" +
		" IN ROLE " + ident(r.Template) +
		// The provisioning role becomes a member of the new one, so that it
		// may later end its backends (pg_terminate_backend) and reassign or
		// drop what it owns: CREATEROLE alone allows neither.
		"; GRANT " + ident(r.Name) + " TO CURRENT_USER"
	conn, release, err := p.own(ctx)
	if err != nil {
		return "", fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer release()
	if _, err := conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
		return "", fmt.Errorf("pgprovision: create role %s: %w", r.Name, redact(err, pw))
	}
	return pw, nil
}

// scramIterations is PostgreSQL's default (scram_iterations); the
// password is 256 random bits, so the count is not what protects it.
const scramIterations = 4096

// scramVerifier returns pw as PostgreSQL stores a SCRAM-SHA-256 password:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64.
func scramVerifier(pw secrets.Secret) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	v := auth.NewSCRAMVerifier(pw.Reveal(), salt, scramIterations)
	b := base64.StdEncoding
	return "SCRAM-SHA-256$" + strconv.Itoa(scramIterations) + ":" + b.EncodeToString(salt) + "$" +
		b.EncodeToString(v.StoredKey) + ":" + b.EncodeToString(v.ServerKey), nil
}

// redact keeps the password out of an error text (the server never echoes
// it today; this holds if a driver ever does).
func redact(err error, pw secrets.Secret) error {
	if pw != "" && strings.Contains(err.Error(), pw.Reveal()) {
		return errors.New(strings.ReplaceAll(err.Error(), pw.Reveal(), "[redacted]"))
	}
	return err
}

// Terminate ends every backend of role on the server, whatever it
// connected through, and returns how many it signalled. It first forbids
// new logins (NOLOGIN), so that none slips in between.
func (p *Provisioner) Terminate(ctx context.Context, role string) (int, error) {
	if err := checkName(role); err != nil {
		return 0, err
	}
	conn, release, err := p.own(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer release()
	if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(role)+" NOLOGIN"); err != nil && !isUndefinedRole(err) {
		return 0, fmt.Errorf("pgprovision: lock role %s: %w", role, err)
	}
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`, role).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pgprovision: terminate backends of %s: %w", role, err)
	}
	return n, nil
}

// Drop removes role: in each database of dbs (the resource's databases)
// its objects are reassigned to owner (when owner is set) and what it
// still owns or was granted is dropped; then the role itself is dropped.
// Backends should be ended first (Terminate). A role that no longer
// exists is not an error, so Drop can be retried until it succeeds.
func (p *Provisioner) Drop(ctx context.Context, role, owner string, dbs []string) error {
	if err := checkName(role); err != nil {
		return err
	}
	if owner != "" {
		if err := checkName(owner); err != nil {
			return err
		}
	}
	for _, db := range dbs {
		if err := p.dropOwned(ctx, db, role, owner); err != nil {
			return err
		}
	}
	conn, release, err := p.own(ctx)
	if err != nil {
		return fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer release()
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+ident(role)); err != nil {
		return fmt.Errorf("pgprovision: drop role %s: %w", role, err)
	}
	return nil
}

func (p *Provisioner) dropOwned(ctx context.Context, db, role, owner string) error {
	conn, err := p.Connect(ctx, db)
	if err != nil {
		return fmt.Errorf("pgprovision: connect to %s: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("pgprovision: look up %s: %w", role, err)
	}
	if !exists {
		return nil
	}
	if owner != "" {
		if _, err := conn.Exec(ctx, "REASSIGN OWNED BY "+ident(role)+" TO "+ident(owner)); err != nil {
			return fmt.Errorf("pgprovision: reassign objects of %s in %s: %w", role, db, err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP OWNED BY "+ident(role)); err != nil {
		return fmt.Errorf("pgprovision: drop owned by %s in %s: %w", role, db, err)
	}
	return nil
}

// List returns the roles on the server whose names start with Prefix:
// those this package made, for reconciliation.
func (p *Provisioner) List(ctx context.Context) ([]string, error) {
	conn, release, err := p.own(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer release()
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname", Prefix)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: list roles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgprovision: list roles: %w", err)
	}
	return names, nil
}

func isUndefinedRole(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42704"
}

// Report is what Inspect found on the server.
type Report struct {
	// Provisioner is the role Inspect logged in as; CreateRole reports
	// whether it has CREATEROLE (it cannot make roles otherwise).
	Provisioner string
	CreateRole  bool
	// Missing are the templates and owner that do not exist.
	Missing []string
	// MissingRights are what the provisioning login lacks beyond
	// CreateRole to do its work (myprovision: PROCESS, CONNECTION ADMIN,
	// the server version), each with why.
	MissingRights []string
	// Drift are roles Airlock did not make (no Prefix) that hold a
	// template's rights: members of it, directly or not, besides the
	// provisioning role.
	Drift []Member
	// Roles are the roles with Prefix (List).
	Roles []string
}

// Member is a role holding a template's rights.
type Member struct{ Role, Template string }

// Inspect reports the provisioning state for templates and owner: whether
// the provisioning role may create roles, which named roles are missing,
// and which roles outside Airlock's hold a template's rights.
func (p *Provisioner) Inspect(ctx context.Context, templates []string, owner string) (*Report, error) {
	conn, err := p.Connect(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep := &Report{}
	if err := conn.QueryRow(ctx, `SELECT rolname, rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&rep.Provisioner, &rep.CreateRole); err != nil {
		return nil, fmt.Errorf("pgprovision: inspect: %w", err)
	}
	names := append(append([]string(nil), templates...), owner)
	rows, err := conn.Query(ctx, `SELECT n FROM unnest($1::text[]) n WHERE n <> '' AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n) ORDER BY n`, names)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: inspect: %w", err)
	}
	if rep.Missing, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("pgprovision: inspect: %w", err)
	}
	rows, err = conn.Query(ctx, `SELECT m.rolname, t.rolname FROM pg_roles t JOIN pg_roles m ON pg_has_role(m.oid, t.oid, 'USAGE')
		WHERE t.rolname = ANY($1) AND m.oid <> t.oid AND m.rolname <> current_user AND NOT starts_with(m.rolname, $2)
		AND NOT m.rolsuper ORDER BY 2, 1`, templates, Prefix)
	if err != nil {
		return nil, fmt.Errorf("pgprovision: inspect: %w", err)
	}
	if rep.Drift, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Member, error) {
		var m Member
		return m, r.Scan(&m.Role, &m.Template)
	}); err != nil {
		return nil, fmt.Errorf("pgprovision: inspect: %w", err)
	}
	conn.Close(ctx)
	if rep.Roles, err = p.List(ctx); err != nil {
		return nil, err
	}
	return rep, nil
}

// NewPassword returns a random password for SetPassword: 256 bits, hex.
func NewPassword() (secrets.Secret, error) { return newPassword() }

// SetPassword gives the provisioning role itself password pw, sent as a
// SCRAM-SHA-256 verifier (ALTER ROLE CURRENT_USER): the old one stops
// working at once.
func (p *Provisioner) SetPassword(ctx context.Context, pw secrets.Secret) error {
	if len(pw) < 32 {
		return errors.New("pgprovision: a provisioning password must be at least 32 characters")
	}
	verifier, err := scramVerifier(pw)
	if err != nil {
		return fmt.Errorf("pgprovision: password: %w", err)
	}
	conn, err := p.Connect(ctx, "")
	if err != nil {
		return fmt.Errorf("pgprovision: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "ALTER ROLE CURRENT_USER PASSWORD '"+verifier+"'", pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("pgprovision: set the provisioning role's password: %w", redact(err, pw))
	}
	return nil
}
