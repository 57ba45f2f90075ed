package pgproxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/sqlguard"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Column masking (Target.Statements.Columns). When a session with masks
// starts, the gateway reads the database's catalog on the session's own
// upstream connection (sqlguard.CatalogQuery) and decides from then on:
//
//   - at each statement (c2s): whether it may read masked data in a way
//     a result column does not show (sqlguard.Catalog.Touches), and
//     whether it is refused outright (Refusal: writes and DDL that read
//     masked tables, COPY and cursors over them, server-side code);
//   - at each RowDescription (s2c): what each column gets, from the table
//     OID and column number PostgreSQL reports (Catalog.Column). A masked
//     column's type is reported as text and its values in DataRow are
//     replaced; a denied column ends the session before any row of it is
//     relayed;
//   - in the extended protocol the gateway sends its own Describe of the
//     portal before each Execute and reads the answer itself, so the rows
//     of every Execute follow a RowDescription it has seen, whatever the
//     client described;
//   - errors and notices of a statement that touches masked data have
//     their text withheld ("invalid input syntax for type integer:
//     \"4111…\"" would show a value).

// maskedText replaces a masked value.
const maskedText = "****"

// withheldText replaces the text of an error or notice that may show a
// masked value.
const withheldText = "airlock: the message text is withheld: the statement may read masked columns"

// textOID is PostgreSQL's text type: masked columns are reported as text.
const textOID = 25

// maskCatalogTimeout bounds the catalog query at a session's start.
const maskCatalogTimeout = 10 * time.Second

// maxCatalogReply bounds the catalog query's reply.
const maxCatalogReply = 256 << 20

// loadCatalog runs the masking catalog query on a fresh upstream
// connection (idle, before the client is attached).
func loadCatalog(up *upstream, sp *policy.Statements, timeout time.Duration) (*sqlguard.Catalog, error) {
	q, err := sqlguard.CatalogQuery(sp)
	if err != nil {
		return nil, err
	}
	if err := up.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	msg, _ := (&pgproto3.Query{String: q}).Encode(nil)
	if _, err := up.conn.Write(msg); err != nil {
		return nil, err
	}
	var rows [][]string
	size, failed := 0, false
	for {
		typ, body, err := readTyped(up.r, 1<<20)
		if err != nil {
			return nil, err
		}
		size += len(body)
		if size > maxCatalogReply || len(rows) > sqlguard.MaxCatalogRows {
			return nil, sqlguard.ErrCatalog
		}
		switch typ {
		case 'T', 'C', 'N':
		case 'D':
			row, ok := textRow(body)
			if !ok {
				return nil, errProtocol
			}
			rows = append(rows, row)
		case 'S':
			k, rest, ok := cstring(body)
			v, _, ok2 := cstring(rest)
			if !ok || !ok2 {
				return nil, errProtocol
			}
			up.params[string(k)] = string(v)
		case 'E':
			failed = true
		case 'Z':
			if failed || len(body) != 1 || body[0] != 'I' {
				return nil, errors.New("pgproxy: the masking catalog query failed")
			}
			up.txStatus = 'I'
			if err := up.conn.SetDeadline(time.Time{}); err != nil {
				return nil, err
			}
			return sqlguard.NewCatalog(sp, rows)
		default:
			return nil, errProtocol
		}
	}
}

// textRow decodes a DataRow of non-null text columns.
func textRow(b []byte) ([]string, bool) {
	if len(b) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, false
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l < 0 || l > len(b) {
			return nil, false
		}
		out = append(out, string(b[:l]))
		b = b[l:]
	}
	return out, len(b) == 0
}

// maskState is the server→client side of masking (owned by s2c).
type maskState struct {
	cat *sqlguard.Catalog
	key []byte // the HMAC key of hash masks
	// plan is the current result's per-column actions (nil: nothing to
	// rewrite in its rows).
	plan []string
	// logged is the last statement whose masking was audited.
	logged int64
}

// describePortal is the Describe message the gateway sends before an
// Execute of portal.
func describePortal(portal []byte) []byte {
	body := make([]byte, 0, len(portal)+2)
	body = append(body, 'P')
	body = append(body, portal...)
	body = append(body, 0)
	return appendMsg(nil, 'D', body)
}

// maskDetails are a db.guard event's details for masked or denied columns.
type maskDetails struct {
	Stmt    int64    `json:"stmt"`
	Rule    string   `json:"rule"`
	Action  string   `json:"action"`
	Columns []string `json:"columns"`
}

// rowDescription applies the masks to a RowDescription body. It returns
// the message to relay (nil: unchanged) and, when a column is denied, the
// columns that are.
func (m *maskState) rowDescription(body []byte, touching bool) (out []byte, masked, denied []string, ok bool) {
	if len(body) < 2 {
		return nil, nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(body))
	m.plan = nil
	var plan []string
	rest := body[2:]
	var rewritten []byte
	for i := 0; i < n; i++ {
		name, r, okName := cstring(rest)
		if !okName || len(r) < 18 {
			return nil, nil, nil, false
		}
		rel := binary.BigEndian.Uint32(r)
		attnum := int16(binary.BigEndian.Uint16(r[4:]))
		a := m.cat.Column(rel, attnum, touching)
		if a != "" {
			if plan == nil {
				plan = make([]string, n)
				rewritten = append(make([]byte, 0, len(body)+5), body[:len(body)-len(rest)]...)
			}
			plan[i] = a
			col := string(name)
			if a == policy.ColumnDeny {
				denied = append(denied, col)
			} else {
				masked = append(masked, col)
			}
		}
		field := r[:18]
		if rewritten != nil {
			rewritten = append(rewritten, rest[:len(name)+1]...)
			start := len(rewritten)
			rewritten = append(rewritten, field...)
			if a != "" {
				f := rewritten[start:]
				binary.BigEndian.PutUint32(f[6:], textOID)
				binary.BigEndian.PutUint16(f[10:], 0xffff) // typlen -1
				binary.BigEndian.PutUint32(f[12:], 0xffffffff)
			}
		}
		rest = r[18:]
	}
	if len(rest) != 0 {
		return nil, nil, nil, false
	}
	if plan == nil {
		return nil, nil, nil, true
	}
	m.plan = plan
	return appendMsg(nil, 'T', rewritten[:]), masked, denied, true
}

// dataRow rewrites a DataRow body by the current plan.
func (m *maskState) dataRow(body []byte) ([]byte, bool) {
	if len(body) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(body))
	if n != len(m.plan) {
		return nil, false
	}
	out := make([]byte, 5, len(body)+5+n*16)
	out[0] = 'D'
	out = append(out, body[:2]...)
	b := body[2:]
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, false
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		if l < -1 || l > len(b)-4 {
			return nil, false
		}
		end := 4 + max(l, 0)
		switch {
		case m.plan[i] == "" || l < 0:
			// As is; a NULL stays NULL.
			out = append(out, b[:end]...)
		case m.plan[i] == policy.ColumnHash:
			mac := hmac.New(sha256.New, m.key)
			mac.Write(b[4:end])
			var sum [32]byte
			v := "h:" + hex.EncodeToString(mac.Sum(sum[:0])[:16])
			out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		default:
			out = binary.BigEndian.AppendUint32(out, uint32(len(maskedText)))
			out = append(out, maskedText...)
		}
		b = b[end:]
	}
	if len(b) != 0 {
		return nil, false
	}
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-1))
	return out, true
}

// withheld rewrites an ErrorResponse or NoticeResponse body: its
// severity, SQLSTATE and the names of objects are kept; its message,
// detail, hint, context and internal query are replaced or dropped.
func withheld(typ byte, body []byte) []byte {
	out := []byte{typ, 0, 0, 0, 0}
	wrote := false
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			break
		}
		body = rest
		switch f {
		case 'S', 'V', 'C', 's', 't', 'c', 'd', 'n':
			out = append(out, f)
			out = append(out, v...)
			out = append(out, 0)
		case 'M':
			out = append(out, 'M')
			out = append(out, withheldText...)
			out = append(out, 0)
			wrote = true
		}
	}
	if !wrote {
		out = append(out, 'M')
		out = append(out, withheldText...)
		out = append(out, 0)
	}
	out = append(out, 0)
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-1))
	return out
}

// maskEvent audits the masking of one statement's result (once per
// statement number).
func (s *session) maskEvent(stmt int64, action string, cols []string) {
	if action != policy.ColumnDeny && s.mask.logged == stmt {
		return
	}
	s.mask.logged = stmt
	outcome := airlock.OutcomeSuccess
	if action == policy.ColumnDeny {
		outcome = airlock.OutcomeDenied
	}
	if len(cols) > 32 {
		cols = cols[:32]
	}
	for i, c := range cols {
		cols[i] = truncateUTF8(c, 64)
	}
	s.submit(s.event("db.guard", outcome, maskDetails{Stmt: stmt, Rule: "columns", Action: action, Columns: cols}))
}

// deniedColumnsMsg is the FATAL a session gets when a result carries a
// denied column.
func deniedColumnsMsg(cols []string) string {
	return "airlock: the result has a column the policy denies (" + truncateUTF8(strings.Join(cols, ", "), 200) +
		"); the session is closed. The statement may have run on the server."
}
