package mysqlwire

import (
	"fmt"
	"strings"
)

// Capability is a set of capability flags (the 32 bits of
// HandshakeV10 and HandshakeResponse41).
type Capability uint32

// Capability flags. CapLongPassword is also MariaDB's CLIENT_MYSQL: a
// server that sets it is taken by MariaDB clients for a MySQL server and
// gets no MariaDB extended capabilities, which this package never uses.
const (
	CapLongPassword              Capability = 1 << 0
	CapFoundRows                 Capability = 1 << 1
	CapLongFlag                  Capability = 1 << 2
	CapConnectWithDB             Capability = 1 << 3
	CapNoSchema                  Capability = 1 << 4
	CapCompress                  Capability = 1 << 5
	CapODBC                      Capability = 1 << 6
	CapLocalFiles                Capability = 1 << 7
	CapIgnoreSpace               Capability = 1 << 8
	CapProtocol41                Capability = 1 << 9
	CapInteractive               Capability = 1 << 10
	CapSSL                       Capability = 1 << 11
	CapIgnoreSigpipe             Capability = 1 << 12
	CapTransactions              Capability = 1 << 13
	CapReserved                  Capability = 1 << 14
	CapSecureConnection          Capability = 1 << 15
	CapMultiStatements           Capability = 1 << 16
	CapMultiResults              Capability = 1 << 17
	CapPSMultiResults            Capability = 1 << 18
	CapPluginAuth                Capability = 1 << 19
	CapConnectAttrs              Capability = 1 << 20
	CapPluginAuthLenencData      Capability = 1 << 21
	CapCanHandleExpiredPasswords Capability = 1 << 22
	CapSessionTrack              Capability = 1 << 23
	CapDeprecateEOF              Capability = 1 << 24
	CapOptionalResultsetMetadata Capability = 1 << 25
	CapZstdCompression           Capability = 1 << 26
	CapQueryAttributes           Capability = 1 << 27
	CapMultiFactorAuthentication Capability = 1 << 28
	CapCapabilityExtension       Capability = 1 << 29
	CapSSLVerifyServerCert       Capability = 1 << 30
	CapRememberOptions           Capability = 1 << 31
)

var capNames = [32]string{
	"LONG_PASSWORD", "FOUND_ROWS", "LONG_FLAG", "CONNECT_WITH_DB", "NO_SCHEMA",
	"COMPRESS", "ODBC", "LOCAL_FILES", "IGNORE_SPACE", "PROTOCOL_41",
	"INTERACTIVE", "SSL", "IGNORE_SIGPIPE", "TRANSACTIONS", "RESERVED",
	"SECURE_CONNECTION", "MULTI_STATEMENTS", "MULTI_RESULTS", "PS_MULTI_RESULTS",
	"PLUGIN_AUTH", "CONNECT_ATTRS", "PLUGIN_AUTH_LENENC_CLIENT_DATA",
	"CAN_HANDLE_EXPIRED_PASSWORDS", "SESSION_TRACK", "DEPRECATE_EOF",
	"OPTIONAL_RESULTSET_METADATA", "ZSTD_COMPRESSION", "QUERY_ATTRIBUTES",
	"MULTI_FACTOR_AUTHENTICATION", "CAPABILITY_EXTENSION", "SSL_VERIFY_SERVER_CERT",
	"REMEMBER_OPTIONS",
}

// Has reports whether all of f are set in c.
func (c Capability) Has(f Capability) bool { return c&f == f }

// String lists the flags, "PROTOCOL_41|SSL|…".
func (c Capability) String() string {
	var s []string
	for i := range 32 {
		if c&(1<<i) != 0 {
			s = append(s, capNames[i])
		}
	}
	return strings.Join(s, "|")
}

// ServerCapabilities is what a gateway offers its clients: the 4.1
// protocol with plugin authentication and connect attributes, multiple
// results (for CALL), DEPRECATE_EOF. Never CapCompress (the gateway
// audits plain packets), CapLocalFiles (added only when a policy allows
// LOAD DATA LOCAL), CapSSL (added when the gateway has a certificate),
// CapMultiStatements (the gateway's choice), nor flags that change the
// command or result layout this package parses (QUERY_ATTRIBUTES,
// OPTIONAL_RESULTSET_METADATA, SESSION_TRACK).
const ServerCapabilities = CapLongPassword | CapFoundRows | CapLongFlag |
	CapConnectWithDB | CapProtocol41 | CapTransactions | CapSecureConnection |
	CapMultiResults | CapPSMultiResults | CapPluginAuth | CapConnectAttrs |
	CapPluginAuthLenencData | CapDeprecateEOF | CapIgnoreSigpipe | CapInteractive |
	CapODBC | CapIgnoreSpace | CapNoSchema

// RelayCapabilities are the flags that change what travels on the wire
// after authentication. A gateway relaying raw packets must have the same
// value of each on both legs: Handshake requests them upstream as the
// client negotiated them and fails if the server lacks one.
const RelayCapabilities = CapFoundRows | CapLongFlag | CapNoSchema | CapODBC |
	CapLocalFiles | CapIgnoreSpace | CapInteractive | CapMultiStatements |
	CapMultiResults | CapPSMultiResults | CapSessionTrack | CapDeprecateEOF |
	CapOptionalResultsetMetadata | CapQueryAttributes | CapTransactions

// Negotiate returns the capabilities in force between a server offering
// offered and a client that asked for client. It refuses a client
// without the 4.1 protocol and secure connection (pre-4.1 authentication),
// and one asking for compression — which offered never includes, so only
// a broken or hostile client asks. Flags the client asks for but offered
// lacks are dropped, as a MySQL server does. The error is a *ServerError
// to send to the client as it is.
func Negotiate(offered, client Capability) (Capability, error) {
	if !client.Has(CapProtocol41) || !client.Has(CapSecureConnection) {
		return 0, &ServerError{Code: ErNotSupportedAuthMode, State: "08004",
			Message: "airlock: the client must use the MySQL 4.1 protocol with secure authentication"}
	}
	if client&(CapCompress|CapZstdCompression) != 0 {
		return 0, &ServerError{Code: ErHandshakeError, State: "08S01",
			Message: "airlock: the compressed protocol is not supported through the gateway; connect without compression"}
	}
	return offered & client, nil
}

// GoString returns the capability in hex and by name, for logs.
func (c Capability) GoString() string { return fmt.Sprintf("0x%08x(%s)", uint32(c), c) }
