package sqlguard

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/airlockhq/airlock/policy"
)

// Column masking works from what PostgreSQL itself says about a result:
// RowDescription names, for each column that is a plain reference to a
// table's column, the table's OID and the column's number. A Catalog is
// what the gateway learns of the connected database when a session with
// masks starts: every relation's OID and kind, the (OID, column number)
// pairs the masks name (partitions and inheritance children included),
// and the names of the functions and operators PostgreSQL ships
// (pg_catalog) and of the others. With it the gateway decides, per
// statement, whether the statement may read masked data (Touches), and,
// per result column, what the column gets (Column). A mask on a table
// covers its partitions and inheritance children, and the same-named
// columns of its ancestors, whose scans return the table's rows.

// Relation kinds (pg_class.relkind) the catalog keeps.
const (
	relTable       = 'r'
	relPartitioned = 'p'
	relForeign     = 'f'
	relView        = 'v'
	relMatView     = 'm'
)

// relFlags say what is known of the relations of one name.
type relFlags uint8

const (
	flagPlain  relFlags = 1 << iota // a table (ordinary, partitioned, foreign)
	flagView                        // a view or materialized view
	flagMasked                      // a table or view some mask names (or a child of one)
)

type colKey struct {
	rel    uint32
	attnum int16
}

// Catalog is a database's relations and routines as a session's masks
// need them. Build it with NewCatalog and the rows of CatalogQuery.
type Catalog struct {
	masks *policy.Statements
	rels  map[uint32]byte // OID → relkind
	// names maps "name" and "schema.name", in lower case, to what the
	// relations of that name are (an unqualified name may be any of them).
	names map[string]relFlags
	// masked are the masked columns and their actions.
	masked map[colKey]string
	// catalogRoutines are the names of functions and operators in
	// pg_catalog; userRoutines those of any other schema (lower case).
	catalogRoutines, userRoutines map[string]bool
	// volatile are the names of routines with a volatile overload in any
	// schema (lower case).
	volatile map[string]bool
	relNames map[uint32][2]string // OID → schema, name
}

// MaxCatalogRows bounds the rows a catalog is built from: a database with
// more relations and routines than this is refused for masking.
const MaxCatalogRows = 500_000

// ErrCatalog: the catalog rows are malformed or too many.
var ErrCatalog = errors.New("sqlguard: cannot build the masking catalog")

// CatalogQuery is the query that lists what NewCatalog needs, for the
// masks of sp. Every row has six text columns: kind ('r' relation, 'a'
// attribute of a masked relation, 'f' routine), then per kind:
//
//	r: oid, schema, name, relkind
//	a: attrelid, schema and name of the masked relation it is, inherits
//	   from, or is an ancestor of (a parent's rows include its children's),
//	   attnum, attname
//	f: "", 'c' (only in pg_catalog), 'u' (only in other schemas) or 'b'
//	   (both), name, 'v' when some routine of the name is volatile (of an
//	   operator, its function) else ""
//
// Names of masked tables are sent as escape-string literals (E'…', every
// quote and backslash doubled), so the query is the same whatever
// standard_conforming_strings is. It fails for a name with a NUL or
// invalid UTF-8, which PostgreSQL cannot hold anyway.
func CatalogQuery(sp *policy.Statements) (string, error) {
	var tables []string
	for _, m := range sp.Columns {
		_, t, _ := policy.SplitColumnPattern(m.Pattern)
		if strings.ContainsRune(t, 0) || !utf8.ValidString(t) {
			return "", fmt.Errorf("%w: the mask %q names no table PostgreSQL can hold", ErrCatalog, m.Pattern)
		}
		lit := "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(t) + "'"
		if !slices.Contains(tables, lit) {
			tables = append(tables, lit)
		}
	}
	if len(tables) == 0 {
		tables = append(tables, "''")
	}
	return `SELECT 'r', c.oid::text, n.nspname::text, c.relname::text, c.relkind::text, ''
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
UNION ALL
SELECT 'a', a.attrelid::text, rn.nspname::text, rc.relname::text, a.attnum::text, a.attname::text
  FROM (WITH RECURSIVE named(oid) AS (
          SELECT c.oid FROM pg_catalog.pg_class c
           WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND pg_catalog.lower(c.relname) IN (` + strings.Join(tables, ", ") + `)),
        down(oid, root) AS (
          SELECT oid, oid FROM named
          UNION
          SELECT i.inhrelid, d.root FROM pg_catalog.pg_inherits i JOIN down d ON i.inhparent = d.oid),
        up(oid, root) AS (
          SELECT oid, oid FROM named
          UNION
          SELECT i.inhparent, u.root FROM pg_catalog.pg_inherits i JOIN up u ON i.inhrelid = u.oid)
        SELECT oid, root FROM down UNION SELECT oid, root FROM up) m
  JOIN pg_catalog.pg_attribute a ON a.attrelid = m.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_class rc ON rc.oid = m.root
  JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
UNION ALL
SELECT 'f', '', CASE WHEN pg_catalog.bool_and(p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace) THEN 'c'
         WHEN pg_catalog.bool_or(p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace) THEN 'b' ELSE 'u' END,
       p.proname::text, CASE WHEN pg_catalog.bool_or(p.provolatile = 'v') THEN 'v' ELSE '' END, ''
  FROM pg_catalog.pg_proc p GROUP BY p.proname
UNION ALL
SELECT 'f', '', CASE WHEN pg_catalog.bool_and(o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace) THEN 'c'
         WHEN pg_catalog.bool_or(o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace) THEN 'b' ELSE 'u' END,
       o.oprname::text, CASE WHEN pg_catalog.bool_or(p.provolatile = 'v') THEN 'v' ELSE '' END, ''
  FROM pg_catalog.pg_operator o LEFT JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode GROUP BY o.oprname`, nil
}

// NewCatalog builds the catalog of sp's masks from the rows of
// CatalogQuery.
func NewCatalog(sp *policy.Statements, rows [][]string) (*Catalog, error) {
	if len(rows) > MaxCatalogRows {
		return nil, fmt.Errorf("%w: more than %d relations and routines", ErrCatalog, MaxCatalogRows)
	}
	c := &Catalog{masks: sp, rels: map[uint32]byte{}, names: map[string]relFlags{}, masked: map[colKey]string{},
		catalogRoutines: map[string]bool{}, userRoutines: map[string]bool{}, volatile: map[string]bool{}, relNames: map[uint32][2]string{}}
	var attrs [][]string
	for _, r := range rows {
		if len(r) != 6 {
			return nil, ErrCatalog
		}
		switch r[0] {
		case "r":
			oid, err := strconv.ParseUint(r[1], 10, 32)
			if err != nil || len(r[4]) != 1 {
				return nil, ErrCatalog
			}
			kind := r[4][0]
			c.rels[uint32(oid)] = kind
			c.relNames[uint32(oid)] = [2]string{r[2], r[3]}
			f := flagPlain
			if kind == relView || kind == relMatView {
				f = flagView
			}
			c.addName(r[2], r[3], f)
		case "a":
			attrs = append(attrs, r)
		case "f":
			name := strings.ToLower(r[3])
			if r[4] == "v" {
				c.volatile[name] = true
			}
			switch r[2] {
			case "c":
				c.catalogRoutines[name] = true
			case "b":
				c.catalogRoutines[name] = true
				c.userRoutines[name] = true
			default:
				c.userRoutines[name] = true
			}
		default:
			return nil, ErrCatalog
		}
	}
	for _, r := range attrs {
		oid, err := strconv.ParseUint(r[1], 10, 32)
		if err != nil {
			return nil, ErrCatalog
		}
		attnum, err := strconv.ParseInt(r[4], 10, 16)
		if err != nil || attnum <= 0 {
			return nil, ErrCatalog
		}
		a := sp.ColumnAction(r[2], r[3], r[5])
		if own, ok := c.relNames[uint32(oid)]; ok {
			// A partition named by a mask of its own.
			if b := sp.ColumnAction(own[0], own[1], r[5]); policy.ColumnStrictness(b) > policy.ColumnStrictness(a) {
				a = b
			}
		}
		if a == "" {
			continue
		}
		k := colKey{uint32(oid), int16(attnum)}
		if policy.ColumnStrictness(a) > policy.ColumnStrictness(c.masked[k]) {
			c.masked[k] = a
		}
		if own, ok := c.relNames[uint32(oid)]; ok {
			c.addName(own[0], own[1], flagMasked)
		}
	}
	return c, nil
}

func (c *Catalog) addName(schema, name string, f relFlags) {
	schema, name = strings.ToLower(schema), strings.ToLower(name)
	c.names[name] |= f
	c.names[schema+"."+name] |= f
}

// Masks reports the number of masked columns found.
func (c *Catalog) Masks() int { return len(c.masked) }

// Touches reports whether st may read a masked column in a way a result
// column's origin does not show: it names a masked relation (or a
// partition, child or parent of one), any view, or a relation the catalog
// does not know (created since, temporary, or a CTE's name); or it calls a
// function or operator that is not PostgreSQL's own (pg_catalog), or that
// the catalog does not know, or one of PostgreSQL's that reads a query or
// relation named in a string (readsByName); or it is a FETCH (a cursor's
// or portal's rows, whose query the statement does not show). An EXECUTE
// is judged by what it runs (prepared); one whose statement is not found
// touches.
func (c *Catalog) Touches(st *Statement, prepared Lookup) bool {
	if st.Prepared != nil {
		return c.Touches(st.Prepared, prepared)
	}
	for _, name := range st.Runs {
		if c.runTouches(name, prepared) {
			return true
		}
	}
	if st.Execute != "" {
		return c.runTouches(st.Execute, prepared)
	}
	if st.Kind == "FetchStmt" {
		return true
	}
	for _, o := range st.Objects {
		f, ok := c.names[lastTwo(strings.ToLower(o))]
		if !ok || f&(flagView|flagMasked) != 0 {
			return true
		}
	}
	for _, l := range [][]string{st.Functions, st.Operators} {
		for _, fn := range l {
			fn = strings.ToLower(fn)
			if !c.catalogRoutine(fn) {
				return true
			}
			if _, n := split(fn); readsByName[n] {
				return true
			}
		}
	}
	for _, a := range st.Attributes {
		// o.f may be a call f(o) of a function of your own.
		if c.userRoutines[strings.ToLower(a)] {
			return true
		}
	}
	return false
}

// runTouches reports whether an EXECUTE of name may touch: any statement
// prepared under it does, or none is known.
func (c *Catalog) runTouches(name string, prepared Lookup) bool {
	var ps []*Statement
	ok := false
	if prepared != nil {
		ps, ok = prepared(name)
	}
	if !ok || len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if c.Touches(p, nil) {
			return true
		}
	}
	return false
}

// readsByName are PostgreSQL's functions that run a query, or read a
// relation or cursor, named in a string argument: what they read is not
// in the statement's text.
var readsByName = map[string]bool{}

func init() {
	for _, f := range []string{"query", "table", "schema", "database", "cursor"} {
		for _, suffix := range []string{"_to_xml", "_to_xmlschema", "_to_xml_and_xmlschema"} {
			readsByName[f+suffix] = true
		}
	}
	for _, f := range []string{"ts_stat", "ts_rewrite"} {
		readsByName[f] = true
	}
}

// volatileCall is the first function st calls that has a volatile
// overload ("" if none). A volatile function may keep its argument where
// a later statement reads it without naming a masked table (set_config,
// large objects, advisory locks, setval, setseed, pg_notify, a function
// of your own that writes a table).
func (c *Catalog) volatileCall(st *Statement) string {
	for _, l := range [][]string{st.Functions, st.Operators, st.Attributes} {
		for _, fn := range l {
			if _, n := split(strings.ToLower(fn)); c.volatile[n] {
				return n
			}
		}
	}
	return ""
}

// catalogRoutine reports whether a call of name certainly runs one of
// PostgreSQL's own functions or operators: qualified with pg_catalog, or
// unqualified with no routine of that name in another schema (so no
// search_path can resolve it elsewhere).
func (c *Catalog) catalogRoutine(name string) bool {
	schema, n := split(name)
	switch schema {
	case "pg_catalog":
		return c.catalogRoutines[n]
	case "":
		return c.catalogRoutines[n] && !c.userRoutines[n]
	}
	return false
}

// lastTwo drops a catalog (database) prefix: db.schema.name → schema.name.
func lastTwo(n string) string {
	if strings.Count(n, ".") < 2 {
		return n
	}
	i := strings.LastIndexByte(n, '.')
	j := strings.LastIndexByte(n[:i], '.')
	return n[j+1:]
}

// Refusal is why a statement may not run in a session with masks ("" if
// it may): a statement that writes or defines something while it may
// read a masked column would copy the value past the mask (INSERT …
// SELECT, CREATE TABLE AS, UPDATE … SET x = card_number, COPY … TO,
// a cursor fetched later by a statement that names nothing); and a
// statement that defines server-side code (functions, operators,
// aggregates, casts, rules, triggers) or runs a body the gateway does not
// see (DO, CALL) could read masked columns out of the gateway's sight.
func (c *Catalog) Refusal(st *Statement, prepared Lookup) string {
	s := st
	if st.Prepared != nil {
		s = st.Prepared
	}
	switch s.Kind {
	case "CreateFunctionStmt", "DefineStmt", "CreateCastStmt", "RuleStmt", "CreateTrigStmt",
		"CreateEventTrigStmt", "CreateTransformStmt", "AlterFunctionStmt", "DoStmt", "CallStmt",
		"CreateOpClassStmt", "AlterOperatorStmt", "AlterTypeStmt", "CreatePLangStmt", "CreatePlangStmt",
		"CreateExtensionStmt", "AlterExtensionStmt", "AlterExtensionContentsStmt",
		// A domain's CHECK runs at every cast to it; these name functions
		// that run later.
		"CreateDomainStmt", "AlterDomainStmt", "CreateRangeStmt", "CreateConversionStmt",
		"CreateFdwStmt", "AlterFdwStmt", "CreateAmStmt":
		return "defining or running server-side code is refused while columns are masked"
	}
	if !c.Touches(st, prepared) {
		return ""
	}
	if st.Execute != "" {
		var ps []*Statement
		ok := false
		if prepared != nil {
			ps, ok = prepared(st.Execute)
		}
		if !ok || len(ps) == 0 {
			return "EXECUTE of a statement this session did not prepare through Airlock is refused while columns are masked"
		}
		for _, p := range ps {
			if why := c.refusalOf(p); why != "" {
				return why
			}
		}
		return ""
	}
	return c.refusalOf(s)
}

// refusalOf is Refusal of a statement that touches (not an EXECUTE).
func (c *Catalog) refusalOf(s *Statement) string {
	if fn := c.volatileCall(s); fn != "" {
		return "a statement that may read masked columns may not call a volatile function (" + fn + "): it could keep the value"
	}
	switch {
	case s.Kind == "CopyStmt":
		return "COPY of a table with masked columns is refused (COPY's rows are not masked)"
	case s.Kind == "DeclareCursorStmt":
		return "a cursor over a table with masked columns is refused (FETCH would not show where its rows come from)"
	case s.Class != ClassRead && s.Class != ClassUtility:
		return "only reads may touch a table with masked columns, a view or a function of your own (a write or DDL would copy the values past the mask)"
	}
	return ""
}

// Column is what a result column gets: its mask's action when (rel,
// attnum) is a masked column; else, when the statement touches masked
// data (Touches) and the column is not proved to be a plain column of a
// table, the policy's unknown_columns action; else "" (as is).
func (c *Catalog) Column(rel uint32, attnum int16, touching bool) string {
	if rel != 0 && attnum > 0 {
		if a, ok := c.masked[colKey{rel, attnum}]; ok {
			return a
		}
	}
	kind, known := c.rels[rel]
	if rel != 0 && !known {
		// A relation created since the session began (a temporary table
		// may borrow a known table's name).
		return c.masks.UnknownColumnsAction()
	}
	if !touching {
		return ""
	}
	switch kind {
	case relTable, relPartitioned, relForeign:
		if attnum > 0 {
			return ""
		}
	}
	// No table (an expression), a whole-row or system column, a view, or a
	// relation created since the session began.
	return c.masks.UnknownColumnsAction()
}
