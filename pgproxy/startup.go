package pgproxy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// StartupParameters are the run-time parameters a client's StartupMessage
// may carry besides user and database; they are passed on to the upstream.
// Each only changes how values are presented to the client. Anything else
// is refused before authentication: "options" can carry -c role=…,
// -c session_authorization=… or -c search_path=…, and any other
// parameter would set a server setting at login, before (and outside)
// the statement audit. Names are compared as PostgreSQL compares setting
// names: without regard to case.
var StartupParameters = []string{
	"application_name", "client_encoding", "datestyle", "extra_float_digits", "intervalstyle", "timezone",
}

// maxStartupValue bounds one startup parameter's value.
const maxStartupValue = 1024

// startupRefusal is why a client's startup parameters are refused: the
// FATAL message for the client and the audit reason.
type startupRefusal struct {
	Parameter string
	Message   string
}

// checkStartupParams returns nil when params (a decoded StartupMessage,
// user and database included) may open a session, or why not.
func checkStartupParams(params map[string]string) *startupRefusal {
	for _, k := range sortedKeys(params) {
		v := params[k]
		switch lk := strings.ToLower(k); {
		case k == "user" || k == "database":
		case lk == "replication":
			return &startupRefusal{k, "airlock: replication connections are not supported through the gateway"}
		case lk == "options":
			return &startupRefusal{k, "airlock: the startup parameter \"options\" (PGOPTIONS, -c …) is not allowed through the gateway; " +
				"set session settings with SET after connecting (allowed at startup: " + strings.Join(StartupParameters, ", ") + ")"}
		case !slices.Contains(StartupParameters, lk):
			return &startupRefusal{k, fmt.Sprintf("airlock: the startup parameter %q is not allowed through the gateway; "+
				"set it with SET after connecting (allowed at startup: %s)", truncateUTF8(k, 64), strings.Join(StartupParameters, ", "))}
		case len(v) > maxStartupValue:
			return &startupRefusal{k, fmt.Sprintf("airlock: the startup parameter %q is longer than %d bytes", k, maxStartupValue)}
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
