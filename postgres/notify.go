package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
)

// Publish sends payload on channel to every listening replica
// (pg_notify; delivered when the implicit transaction commits).
func (db *DB) Publish(ctx context.Context, channel, payload string) error {
	if _, err := db.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// Subscribe calls fn for every payload published on channel until ctx
// ends, holding one pooled connection for LISTEN. A lost connection is
// re-established after a short pause; notifications sent while it was
// down are lost, which is why gateways also enforce every session's
// ends_at locally. ready, when not nil, is closed once the first LISTEN is
// in effect.
func (db *DB) Subscribe(ctx context.Context, channel string, fn func(payload string), ready chan<- struct{}) error {
	first := true
	for {
		err := db.listen(ctx, channel, fn, func() {
			if first && ready != nil {
				close(ready)
			}
			first = false
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

func (db *DB) listen(ctx context.Context, channel string, fn func(string), listening func()) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// Quote the channel as an identifier: LISTEN takes no parameters.
	if _, err := conn.Exec(ctx, `LISTEN "`+quoteIdent(channel)+`"`); err != nil {
		return err
	}
	listening()
	defer conn.Exec(context.WithoutCancel(ctx), `UNLISTEN *`)
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}

func quoteIdent(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// revocationChannel is the NOTIFY channel replicas share revocations on.
const revocationChannel = "airlock_revocations"

// DB carries revocations between the replicas that share it.
var _ airlock.RevocationTransport = (*DB)(nil)

// SendRevocation publishes an encoded revocation to every replica
// (airlock.RevocationTransport).
func (db *DB) SendRevocation(ctx context.Context, payload []byte) error {
	return db.Publish(ctx, revocationChannel, string(payload))
}

// ReceiveRevocations calls fn for every revocation a replica sends until
// ctx ends (airlock.RevocationTransport), as Subscribe does.
func (db *DB) ReceiveRevocations(ctx context.Context, fn func(payload []byte), ready chan<- struct{}) error {
	return db.Subscribe(ctx, revocationChannel, func(p string) { fn([]byte(p)) }, ready)
}
