package pgproxy

// A fifth attack review: the server keys protocol statement and portal
// names by their first 63 bytes, the gateway keyed its records by the
// whole name (now serverName). TestMaskAttack5LongNameAliasesCopy failed
// (DESYNC) while its attack worked; the masked variant held before too
// (the refused Parse leaves its name's record uncertain) and pins it.

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Two names that agree in their first 63 bytes are one statement to the
// server: the second Parse is refused (42P05), and a Bind of it binds
// the first. Decided as the harmless second statement, the first's
// expression over a masked column would reach the client unmasked.
func TestMaskAttack5LongNameAliasesMaskedStatement(t *testing.T) {
	e := maskEnv(t, "")
	r := dialRaw(t, e)
	long := strings.Repeat("n", 63)
	out := r.send(1, &pgproto3.Parse{Name: long + "X", Query: "SELECT card_number || '' FROM orders WHERE id = 1"}, &pgproto3.Sync{})
	out += r.send(1, &pgproto3.Parse{Name: long + "Y", Query: "SELECT 'harmless'::text"}, &pgproto3.Sync{})
	out += r.send(1, &pgproto3.Bind{DestinationPortal: long + "P", PreparedStatement: long + "Y"},
		&pgproto3.Execute{Portal: long + "Q"}, &pgproto3.Sync{})
	t.Logf("%s", out)
	if strings.Contains(out, card1) || strings.Contains(out, "411111") {
		t.Errorf("BYPASS: a masked value came back through a statement name the server truncates:\n%s", out)
	}
}

// Without guardrails the same aliasing hid a COPY from the copy gate: the
// gateway took the Bind for "SELECT 1", the server ran COPY … FROM STDIN,
// and the client's Sync after the Execute stayed queued with no answer.
func TestMaskAttack5LongNameAliasesCopy(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e)
	long := strings.Repeat("c", 63)
	r.send(1, &pgproto3.Parse{Name: long + "X", Query: "COPY items (id, name) FROM STDIN"}, &pgproto3.Sync{})
	r.send(1, &pgproto3.Parse{Name: long + "Y", Query: "SELECT 1"}, &pgproto3.Sync{}) // refused: 42P05
	r.fe.Send(&pgproto3.Bind{PreparedStatement: long + "Y"})
	r.fe.Send(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Sync{}) // ignored by the server in copy-in mode
	r.flush()
	out := r.untilCopyIn()
	out += r.send(1, &pgproto3.CopyData{Data: []byte("96\tlong\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	t.Logf("%s", out)
	s := e.onlySession(t)
	left, _ := queueState(s)
	if len(left) > 0 {
		t.Errorf("DESYNC %d request(s) queued with every response received (%c first)", len(left), left[0].kind)
	}
}
