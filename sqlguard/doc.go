// Package sqlguard decides what a PostgreSQL statement is before the
// gateway forwards it: it parses the text with PostgreSQL's own grammar
// (libpg_query compiled to WebAssembly and run by wazero — no cgo, through
// github.com/wasilibs/go-pgquery) and classifies each statement of it
// (read, write, ddl, dcl, utility or unknown), with the destructive forms,
// tables and functions it names. Rules (policy.StatementRule) are then
// matched against that classification in order; a statement the parser
// rejects or whose class cannot be decided follows the policy's
// on_unknown, which is deny unless the policy says otherwise: fail closed.
//
// The classification is syntactic. It sees what the text says, not what
// the database will do: a function a SELECT calls may write, a view may
// read a table the text does not name, and a table name may resolve to
// another schema through search_path. Rules that name tables and functions
// therefore match by name in any schema when the text leaves the schema
// out, and the account's privileges stay the real boundary.
package sqlguard
