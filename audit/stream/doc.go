// Package stream sends the audit log to SIEMs: each configured sink (syslog
// RFC 5424 over TCP or TLS with octet counting, a JSON Lines file with size
// and time rotation, or an HTTP batch endpoint compatible with Splunk's
// HTTP Event Collector) receives every event, in seq order, in Airlock's
// own event JSON or mapped to OCSF (see OCSF).
//
// # Delivery
//
// Delivery is at least once. A Streamer reads committed events from the
// store after its sink's cursor (airlock.StreamStore), bounded batches at
// a time, sends them, and moves the cursor once the sink has them: at
// once for a file (written and fsynced) and for HEC (a 2xx answer); for
// syslog, which has no acknowledgement, only after the connection stayed
// up for Settle after the send (a reader on the connection sees the
// receiver close or reset it). Any failure rewinds to the cursor and sends
// again from there, so a restart, a dead receiver or a lost lease leaves
// no gap; what is sent twice carries the same seq. Because the streamer
// reads the store after commit, it never holds back an append: a sink that
// is down only makes its cursor lag.
//
// Across replicas on one store, a lease per sink (LeaseStream, renewed
// every Lease/3) lets one server at a time stream to it, and the cursor
// moves only under a valid lease (AdvanceStream is fenced by it). Leases are
// judged on each server's clock: replicas' clocks must agree to well
// within Lease.
//
// # Alerts
//
// Per sink, the metrics airlock_audit_stream_lag_events (log head minus
// cursor), airlock_audit_stream_cursor_seq, airlock_audit_stream_sent_total,
// airlock_audit_stream_failures_total and airlock_audit_stream_leader
// (1 on the server holding the lease). The lease holder records one audit
// event per episode: audit.stream.behind when the lag exceeds AlertLag,
// audit.stream.failing when sends have failed for longer than AlertAfter,
// and audit.stream.recovered when both have cleared.
//
// The RFC 5424 / RFC 6587 framing, the rotation and the HEC client are
// written here, a few dozen lines each: the settle rule needs the syslog
// connection itself (to see the receiver drop it), and the HEC client must
// keep its token from redirects, proxies and error messages.
package stream
