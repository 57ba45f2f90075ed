// Package jsonenc appends JSON values to byte slices without reflection,
// byte for byte as encoding/json's Marshal encodes them, for audit details
// written on a gateway's hot path (a statement, an HTTP request), where
// json.Marshal's reflection and allocations were a measurable share of
// the cost. Written by hand because encoding/json exports no appender for
// a single string; the tests compare every output with json.Marshal.
package jsonenc
