// Package datadir creates and opens Airlock's data directory: the embedded
// SQLite store's home and the keys the server generates at first start.
//
// Layout (directory 0700, every file 0600):
//
//	airlock-data.json      marker: format version and creation time
//	airlock.db             SQLite store (when the store is embedded)
//	audit.key              ed25519 private key that signs audit checkpoints (PKCS#8 PEM)
//	audit.pub              its public key (PKIX PEM) for offline verification
//	master.key             AES-256 master key for secrets at rest: "<key-id> <base64>" lines, first is current
//	ssh_user_ca, ssh_host_ca  ed25519 SSH certificate authorities (OpenSSH PEM)
//	tls_ca.key, tls_ca.crt    the CA that signs the gateways' TLS certificates
//	bootstrap.token        one-time token for creating the first admin (removed once used)
//	recordings/            SSH session recordings
//
// A first start builds the directory under a temporary name next to the
// target and renames it into place only when complete, so a failed first
// start leaves nothing half-created. A non-empty directory without the
// marker is refused as foreign rather than written into.
package datadir
