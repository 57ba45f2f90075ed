package sqlguard

import (
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Class is what a statement does, as far as its text says.
type Class string

// The classes, from the policy's point of view.
const (
	ClassRead    Class = "read"    // SELECT (no write, lock or INTO), COPY … TO, EXPLAIN without ANALYZE
	ClassWrite   Class = "write"   // INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY … FROM, SELECT … FOR UPDATE, a CTE that writes
	ClassDDL     Class = "ddl"     // CREATE, ALTER, DROP, COMMENT, SELECT … INTO, CREATE TABLE AS …
	ClassDCL     Class = "dcl"     // GRANT, REVOKE, roles and ownership
	ClassUtility Class = "utility" // transactions, SET, SHOW, LISTEN, VACUUM, cursors, PREPARE/EXECUTE bookkeeping
	ClassUnknown Class = "unknown" // DO, CALL, LOAD, anything not classified: its effect is not in its text
)

// Classes lists the classes a rule may name.
var Classes = []Class{ClassRead, ClassWrite, ClassDDL, ClassDCL, ClassUtility, ClassUnknown}

// The destructive and dangerous forms a rule may match.
const (
	FormNoWhere        = "no_where"        // UPDATE or DELETE without a WHERE that names a column (none, WHERE true, WHERE 1=1, … OR true)
	FormTruncate       = "truncate"        // TRUNCATE
	FormDrop           = "drop"            // DROP of any object
	FormAlterDrop      = "alter_drop"      // ALTER TABLE … DROP COLUMN / CONSTRAINT / …
	FormCopyProgram    = "copy_program"    // COPY … PROGRAM (runs a shell command on the server)
	FormCopyFile       = "copy_file"       // COPY to or from a file on the server
	FormExplainAnalyze = "explain_analyze" // EXPLAIN ANALYZE (runs the statement)
)

// Forms lists the forms a rule may name.
var Forms = []string{FormNoWhere, FormTruncate, FormDrop, FormAlterDrop, FormCopyProgram, FormCopyFile, FormExplainAnalyze}

// Statement is one statement of a query string, classified.
type Statement struct {
	Text  string // the statement's own text
	Kind  string // the parse node, e.g. "DeleteStmt"
	Class Class
	// Why is set when Class is unknown: what could not be decided.
	Why string
	// Forms are the destructive or dangerous forms present.
	Forms []string
	// Objects are the relations and dropped objects named, as PostgreSQL
	// reads them (unquoted names folded to lower case), "schema.name" when
	// the text qualifies them, else "name".
	Objects []string
	// Functions are the functions and procedures called, named like
	// Objects, qualified as written.
	Functions []string
	// Operators are the operators used (=, ||, or a qualified
	// OPERATOR(schema.op)), for column masking: an operator is a function.
	Operators []string
	// Attributes are the last names of qualified column references and
	// field selections (o.x, (v).x): PostgreSQL calls a function x(o)
	// when o has no column x, so for masking each may be a call.
	Attributes []string
	// Prepare is the name of an SQL-level PREPARE; Prepared is its
	// statement, classified (the class of PREPARE itself is utility).
	Prepare  string
	Prepared *Statement
	// Execute is the name an SQL-level EXECUTE runs: its class is the
	// prepared statement's, which the session must look up.
	Execute string
	// Deallocate is the name an SQL-level DEALLOCATE drops, as the server
	// folds it (protocol statement names are the same namespace);
	// DeallocateAll: DEALLOCATE ALL or DISCARD ALL.
	Deallocate    string
	DeallocateAll bool
	// Runs are the names of every EXECUTE in the statement, Execute's and
	// those inside another statement (CREATE TABLE AS EXECUTE p, EXPLAIN
	// ANALYZE EXECUTE p), which run the prepared statement too.
	Runs []string

	scanState
}

// classify classifies one parsed statement.
func classify(node *pg.Node, text string) Statement {
	s := Statement{Text: text}
	if node == nil || node.Node == nil {
		s.Kind, s.Class, s.Why = "empty", ClassUtility, ""
		return s
	}
	m := node.ProtoReflect()
	// The oneof's value is the statement message.
	inner := oneofValue(m)
	if inner == nil {
		s.Kind, s.Class, s.Why = "unknown", ClassUnknown, "the parser returned no statement"
		return s
	}
	s.Kind = string(inner.Descriptor().Name())
	s.Class, s.Why = topClass(node, &s)
	collect(inner, &s)
	if e := node.GetExplainStmt(); e != nil && !explainAnalyze(e) {
		// EXPLAIN without ANALYZE plans the statement and does not run it:
		// a read, whatever it explains (its names are kept for rules).
		s.Forms = slices.DeleteFunc(s.Forms, func(f string) bool { return f == FormNoWhere })
		return finish(s, ClassRead)
	}
	// Anything that writes, wherever it is nested, makes a read a write.
	if s.Class == ClassRead && (s.hasWriteNode || s.locks) {
		s.Class = ClassWrite
	}
	if s.Class == ClassRead && s.into {
		s.Class = ClassDDL
	}
	return finish(s, s.Class)
}

func finish(s Statement, c Class) Statement {
	s.Class = c
	s.Forms = dedupe(s.Forms)
	s.Objects = dedupe(s.Objects)
	s.Functions = dedupe(s.Functions)
	s.Operators = dedupe(s.Operators)
	return s
}

// topClass is the class of the statement's own kind.
func topClass(node *pg.Node, s *Statement) (Class, string) {
	switch n := node.Node.(type) {
	case *pg.Node_SelectStmt:
		return ClassRead, ""
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt, *pg.Node_RefreshMatViewStmt:
		return ClassWrite, ""
	case *pg.Node_TruncateStmt:
		s.Forms = append(s.Forms, FormTruncate)
		return ClassWrite, ""
	case *pg.Node_CopyStmt:
		c := n.CopyStmt
		if c.IsProgram {
			s.Forms = append(s.Forms, FormCopyProgram)
		} else if c.Filename != "" {
			s.Forms = append(s.Forms, FormCopyFile)
		}
		if c.IsFrom {
			return ClassWrite, ""
		}
		return ClassRead, ""
	case *pg.Node_ExplainStmt:
		if !explainAnalyze(n.ExplainStmt) {
			return ClassRead, ""
		}
		s.Forms = append(s.Forms, FormExplainAnalyze)
		in := classify(n.ExplainStmt.Query, s.Text)
		s.Forms = append(s.Forms, in.Forms...)
		return in.Class, in.Why
	case *pg.Node_DeclareCursorStmt:
		in := classify(n.DeclareCursorStmt.Query, s.Text)
		return in.Class, in.Why
	case *pg.Node_PrepareStmt:
		in := classify(n.PrepareStmt.Query, s.Text)
		s.Prepare, s.Prepared = strings.ToLower(n.PrepareStmt.Name), &in
		return ClassUtility, ""
	case *pg.Node_ExecuteStmt:
		s.Execute = strings.ToLower(n.ExecuteStmt.Name)
		return ClassUnknown, "EXECUTE of a statement prepared earlier"
	case *pg.Node_DeallocateStmt:
		s.Deallocate, s.DeallocateAll = n.DeallocateStmt.Name, n.DeallocateStmt.Isall || n.DeallocateStmt.Name == ""
		return ClassUtility, ""
	case *pg.Node_DiscardStmt:
		s.DeallocateAll = n.DiscardStmt.Target == pg.DiscardMode_DISCARD_ALL // (it deallocates all, too)
		return ClassUtility, ""
	case *pg.Node_DropStmt:
		s.Forms = append(s.Forms, FormDrop)
		for _, o := range n.DropStmt.Objects {
			if name := qualifiedName(o); name != "" {
				s.Objects = append(s.Objects, name)
			}
		}
		return ClassDDL, ""
	case *pg.Node_AlterTableStmt:
		for _, c := range n.AlterTableStmt.Cmds {
			if cmd := c.GetAlterTableCmd(); cmd != nil && alterDrops(cmd.Subtype) {
				s.Forms = append(s.Forms, FormAlterDrop)
			}
		}
		return ClassDDL, ""
	case *pg.Node_DropdbStmt, *pg.Node_DropTableSpaceStmt, *pg.Node_DropSubscriptionStmt:
		s.Forms = append(s.Forms, FormDrop)
		return ClassDDL, ""
	case *pg.Node_DropRoleStmt, *pg.Node_DropOwnedStmt, *pg.Node_DropUserMappingStmt:
		s.Forms = append(s.Forms, FormDrop)
		return ClassDCL, ""
	case *pg.Node_DoStmt:
		return ClassUnknown, "a DO block's body is not analysed"
	case *pg.Node_CallStmt:
		return ClassUnknown, "CALL runs a procedure whose body is not analysed"
	case *pg.Node_LoadStmt:
		return ClassUnknown, "LOAD loads a shared library into the server"
	}
	kind := string(oneofValue(node.ProtoReflect()).Descriptor().Name())
	if c, ok := kindClass[kind]; ok {
		return c, ""
	}
	return ClassUnknown, "statement " + kind + " is not classified"
}

// kindClass classifies the statements that need no look inside.
var kindClass = map[string]Class{}

func init() {
	for _, k := range []string{"TransactionStmt", "VariableSetStmt", "VariableShowStmt",
		"ListenStmt", "UnlistenStmt", "NotifyStmt", "FetchStmt", "ClosePortalStmt",
		"CheckPointStmt", "VacuumStmt", "ClusterStmt", "ReindexStmt", "LockStmt", "ConstraintsSetStmt"} {
		kindClass[k] = ClassUtility
	}
	for _, k := range []string{"GrantStmt", "GrantRoleStmt", "AlterDefaultPrivilegesStmt", "CreateRoleStmt",
		"AlterRoleStmt", "AlterRoleSetStmt", "ReassignOwnedStmt", "CreateUserMappingStmt",
		"AlterUserMappingStmt", "AlterOwnerStmt", "CreatePolicyStmt", "AlterPolicyStmt", "SecLabelStmt"} {
		kindClass[k] = ClassDCL
	}
	for _, k := range []string{"CreateSchemaStmt", "ReplicaIdentityStmt", "AlterCollationStmt",
		"AlterDomainStmt", "CreateStmt", "CreateTableSpaceStmt", "AlterTableSpaceOptionsStmt",
		"AlterTableMoveAllStmt", "CreateExtensionStmt", "AlterExtensionStmt", "AlterExtensionContentsStmt",
		"CreateFdwStmt", "AlterFdwStmt", "CreateForeignServerStmt", "AlterForeignServerStmt",
		"CreateForeignTableStmt", "ImportForeignSchemaStmt", "CreateAmStmt", "CreateTrigStmt",
		"CreateEventTrigStmt", "AlterEventTrigStmt", "CreatePlangStmt", "CreateSeqStmt", "AlterSeqStmt",
		"DefineStmt", "CreateDomainStmt", "CreateOpClassStmt", "CreateOpFamilyStmt", "AlterOpFamilyStmt",
		"CommentStmt", "IndexStmt", "CreateStatsStmt", "AlterStatsStmt", "CreateFunctionStmt",
		"AlterFunctionStmt", "RenameStmt", "AlterObjectDependsStmt", "AlterObjectSchemaStmt",
		"AlterOperatorStmt", "AlterTypeStmt", "RuleStmt", "CompositeTypeStmt", "CreateEnumStmt",
		"CreateRangeStmt", "AlterEnumStmt", "ViewStmt", "CreatedbStmt", "AlterDatabaseStmt",
		"AlterDatabaseRefreshCollStmt", "AlterDatabaseSetStmt", "AlterSystemStmt", "CreateTableAsStmt",
		"CreateConversionStmt", "CreateCastStmt", "CreateTransformStmt", "AlterTsdictionaryStmt",
		"AlterTsconfigurationStmt", "CreatePublicationStmt", "AlterPublicationStmt",
		"CreateSubscriptionStmt", "AlterSubscriptionStmt"} {
		kindClass[k] = ClassDDL
	}
}

func alterDrops(t pg.AlterTableType) bool {
	switch t {
	case pg.AlterTableType_AT_DropColumn, pg.AlterTableType_AT_DropConstraint, pg.AlterTableType_AT_DropExpression,
		pg.AlterTableType_AT_DropIdentity, pg.AlterTableType_AT_DropInherit, pg.AlterTableType_AT_DropNotNull,
		pg.AlterTableType_AT_DropOf, pg.AlterTableType_AT_DropCluster, pg.AlterTableType_AT_DropOids,
		pg.AlterTableType_AT_DetachPartition:
		return true
	}
	return false
}

// explainAnalyze reports whether an EXPLAIN runs its statement.
func explainAnalyze(e *pg.ExplainStmt) bool {
	for _, o := range e.Options {
		d := o.GetDefElem()
		if d == nil || !strings.EqualFold(d.Defname, "analyze") {
			continue
		}
		if d.Arg == nil {
			return true
		}
		// ANALYZE false / off / 0 turn it off; anything else is on.
		switch v := d.Arg.Node.(type) {
		case *pg.Node_Boolean:
			return v.Boolean.Boolval
		case *pg.Node_String_:
			switch strings.ToLower(v.String_.Sval) {
			case "false", "off", "no", "0":
				return false
			}
			return true
		case *pg.Node_Integer:
			return v.Integer.Ival != 0
		case *pg.Node_AConst:
			if b := v.AConst.GetBoolval(); b != nil {
				return b.Boolval
			}
			if i := v.AConst.GetIval(); i != nil {
				return i.Ival != 0
			}
			if sv := v.AConst.GetSval(); sv != nil {
				switch strings.ToLower(sv.Sval) {
				case "false", "off", "no", "0":
					return false
				}
			}
			return true
		}
		return true
	}
	return false
}

// scan state kept on the Statement while collecting.
type scanState struct {
	hasWriteNode, locks, into bool
}

// collect walks every message under m and records what rules match on.
func collect(m protoreflect.Message, s *Statement) {
	walk(m, func(m protoreflect.Message) {
		switch n := m.Interface().(type) {
		case *pg.RangeVar:
			s.Objects = append(s.Objects, rangeVarName(n))
		case *pg.FuncCall:
			if name := namesOf(n.Funcname); name != "" {
				s.Functions = append(s.Functions, name)
			}
		case *pg.A_Expr:
			switch n.Kind {
			case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN,
				pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
				// Named "BETWEEN"; PostgreSQL runs <= and >= for it.
				s.Operators = append(s.Operators, "<=", ">=")
			default:
				if name := namesOf(n.Name); name != "" {
					s.Operators = append(s.Operators, name)
				}
			}
		case *pg.ExecuteStmt:
			s.Runs = append(s.Runs, strings.ToLower(n.Name))
		case *pg.SubLink:
			// x op ANY/ALL (SELECT …); IN (SELECT …) runs =.
			if name := namesOf(n.OperName); name != "" {
				s.Operators = append(s.Operators, name)
			} else if n.SubLinkType == pg.SubLinkType_ANY_SUBLINK || n.SubLinkType == pg.SubLinkType_ALL_SUBLINK {
				s.Operators = append(s.Operators, "=")
			}
		case *pg.SortBy:
			if name := namesOf(n.UseOp); name != "" {
				s.Operators = append(s.Operators, name)
			}
		case *pg.CaseExpr:
			if n.Arg != nil {
				s.Operators = append(s.Operators, "=") // CASE x WHEN y compares with =
			}
		case *pg.ColumnRef:
			if len(n.Fields) > 1 {
				if f := n.Fields[len(n.Fields)-1].GetString_(); f != nil {
					s.Attributes = append(s.Attributes, f.Sval)
				}
			}
		case *pg.A_Indirection:
			for _, i := range n.Indirection {
				if f := i.GetString_(); f != nil {
					s.Attributes = append(s.Attributes, f.Sval)
				}
			}
		case *pg.InsertStmt, *pg.MergeStmt:
			s.hasWriteNode = true
		case *pg.UpdateStmt:
			s.hasWriteNode = true
			if trivialWhere(n.WhereClause) {
				s.Forms = append(s.Forms, FormNoWhere)
			}
		case *pg.DeleteStmt:
			s.hasWriteNode = true
			if trivialWhere(n.WhereClause) {
				s.Forms = append(s.Forms, FormNoWhere)
			}
		case *pg.LockingClause:
			s.locks = true
		case *pg.IntoClause:
			s.into = true
		case *pg.CopyStmt:
			// COPY inside something (PREPARE cannot hold one, but be safe).
			if n.IsProgram {
				s.Forms = append(s.Forms, FormCopyProgram)
			}
		}
	})
}

// walk calls fn for m and every message below it, depth first.
func walk(m protoreflect.Message, fn func(protoreflect.Message)) {
	fn(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), fn)
			}
		case fd.IsMap():
			// The parse tree has no maps.
		case fd.Kind() == protoreflect.MessageKind:
			walk(v.Message(), fn)
		}
		return true
	})
}

// oneofValue returns the message a Node wrapper holds.
func oneofValue(m protoreflect.Message) protoreflect.Message {
	var out protoreflect.Message
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() {
			out = v.Message()
			return false
		}
		return true
	})
	return out
}

// trivialWhere reports whether a WHERE clause selects every row as far
// as its text shows: none at all, one that names no column (WHERE true,
// WHERE 1=1, WHERE 'x' IS NOT NULL), or an OR with such an arm.
func trivialWhere(w *pg.Node) bool {
	if w == nil || w.Node == nil {
		return true
	}
	if !namesColumn(w) {
		return true
	}
	if b := w.GetBoolExpr(); b != nil && b.Boolop == pg.BoolExprType_OR_EXPR {
		for _, a := range b.Args {
			if trivialWhere(a) {
				return true
			}
		}
	}
	return false
}

// namesColumn reports whether n refers to a column anywhere below it.
func namesColumn(n *pg.Node) bool {
	found := false
	walk(n.ProtoReflect(), func(m protoreflect.Message) {
		if _, ok := m.Interface().(*pg.ColumnRef); ok {
			found = true
		}
	})
	return found
}

func rangeVarName(r *pg.RangeVar) string {
	// The parser has folded unquoted names to lower case already; a
	// quoted name keeps its case.
	name := r.Relname
	if r.Schemaname != "" {
		name = r.Schemaname + "." + name
	}
	return name
}

// namesOf joins a list of String nodes ("pg_catalog", "pg_read_file").
func namesOf(ns []*pg.Node) string {
	parts := make([]string, 0, len(ns))
	for _, n := range ns {
		if s := n.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		}
	}
	return strings.Join(parts, ".")
}

// qualifiedName is a dropped object's name: a List of Strings, a
// String, or a type name.
func qualifiedName(n *pg.Node) string {
	switch v := n.Node.(type) {
	case *pg.Node_List:
		return namesOf(v.List.Items)
	case *pg.Node_String_:
		return v.String_.Sval
	case *pg.Node_TypeName:
		return namesOf(v.TypeName.Names)
	case *pg.Node_ObjectWithArgs:
		return namesOf(v.ObjectWithArgs.Objname)
	}
	return ""
}

func dedupe(xs []string) []string {
	if len(xs) < 2 {
		return xs
	}
	slices.Sort(xs)
	return slices.Compact(xs)
}
