package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/sqlite"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const recording = "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"$ uptime\\r\\n\"]\n"

// fixture is a store holding one approved grant with a reviewed request,
// a database session with statements and an SSH session with a recording,
// their audit events (between other users' events), and a checkpoint.
type fixture struct {
	store *sqlite.DB
	pub   ed25519.PublicKey
	key   ed25519.PrivateKey
	src   Source
	grant *airlock.Grant
}

func newFixture(t testing.TB) *fixture { return newFixtureN(t, 0) }

// newFixtureN is newFixture with n more statements in the database session.
func newFixtureN(t testing.TB, n int) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := func() time.Time { return t0 }
	al, err := audit.Open(ctx, store, audit.Options{Signer: key, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(e airlock.Event) {
		t.Helper()
		if e.Outcome == "" {
			e.Outcome = airlock.OutcomeSuccess
		}
		if _, err := al.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := airlock.Actor{ID: "usr_a", Name: "alice"}, airlock.Actor{ID: "usr_b", Name: "bob"}
	rq := &airlock.AccessRequest{ID: "req_1", UserID: "usr_a", UserName: "alice", Resource: "prod-db", Access: "read", Duration: time.Hour,
		Reason: "INC-42 refunds", Ticket: "OPS-7", State: airlock.RequestPending, Rule: "devs-read", RequiredApprovals: 1, PolicyVersion: 1,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := store.CreateRequest(ctx, rq); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: alice, Action: "request.created", Resource: "prod-db", RequestID: rq.ID,
		Details: airlock.EventDetails("access", "read", "duration", "1h0m0s", "reason", rq.Reason, "ticket", rq.Ticket, "rule", rq.Rule, "policy_version", 1)})
	rec(airlock.Event{Actor: bob, Action: "login.succeeded"}) // someone else's
	rv := &airlock.Review{RequestID: rq.ID, ReviewerID: "usr_b", ReviewerName: "bob", Decision: airlock.DecisionApprove, MFAMethod: "totp", CreatedAt: t0}
	if err := store.AddReview(ctx, rv); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: bob, Action: "request.reviewed", Resource: "prod-db", RequestID: rq.ID,
		Details: airlock.EventDetails("decision", "approve", "comment", "ok", "mfa_method", "totp")})
	g := &airlock.Grant{ID: "gr_1", RequestID: rq.ID, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Access: "read",
		StartsAt: t0, EndsAt: t0.Add(time.Hour), State: airlock.GrantActive, MFAMethod: "totp", CreatedAt: t0}
	if err := store.ApproveRequest(ctx, rq.ID, g); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: bob, Action: "grant.activated", Resource: "prod-db", RequestID: rq.ID, GrantID: g.ID,
		Details: airlock.EventDetails("user", "alice", "access", "read", "starts_at", g.StartsAt, "ends_at", g.EndsAt, "why", "approved", "break_glass", false)})
	db := &airlock.Session{ID: "ses_db", GrantID: g.ID, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Kind: airlock.KindPostgres, Access: "read", StartedAt: t0}
	if err := store.CreateSession(ctx, db); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: alice, Action: "session.started", Resource: "prod-db", GrantID: g.ID, SessionID: db.ID})
	// (< and & would be escaped by a JSON encoder's defaults: the pack
	// keeps the bytes the hash covers.)
	for _, q := range []string{"select 1 where 2 > 1 and 'a' <> 'b&c'", "select * from orders"} {
		rec(airlock.Event{Actor: alice, Action: "db.query", Resource: "prod-db", GrantID: g.ID, SessionID: db.ID, Details: airlock.EventDetails("query", q)})
	}
	rec(airlock.Event{Actor: alice, Action: "db.query", Resource: "prod-db", GrantID: "gr_other", SessionID: "ses_other"}) // another grant's
	if n > 0 {
		var last *audit.Receipt
		extraStatements(n)(func(e airlock.Event) { last = al.Submit(e) })
		if _, err := last.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	db.EndedAt, db.EndReason, db.Statements = t0.Add(time.Minute), "client_terminated", 2
	if err := store.EndSession(ctx, db); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: alice, Action: "session.ended", Resource: "prod-db", GrantID: g.ID, SessionID: db.ID, Details: airlock.EventDetails("end_reason", "client_terminated")})
	sum := sha256.Sum256([]byte(recording))
	ssh := &airlock.Session{ID: "ses_ssh", GrantID: g.ID, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Kind: airlock.KindSSH, Access: "root",
		StartedAt: t0, Recording: "rec/ses_ssh"}
	if err := store.CreateSession(ctx, ssh); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: alice, Action: "session.started", Resource: "prod-db", GrantID: g.ID, SessionID: ssh.ID})
	ssh.EndedAt, ssh.EndReason, ssh.RecordingSHA256 = t0.Add(2*time.Minute), "client_closed", hex.EncodeToString(sum[:])
	if err := store.EndSession(ctx, ssh); err != nil {
		t.Fatal(err)
	}
	rec(airlock.Event{Actor: alice, Action: "session.ended", Resource: "prod-db", GrantID: g.ID, SessionID: ssh.ID,
		Details: airlock.EventDetails("reason", "client_closed", "recording", ssh.Recording, "recording_sha256", ssh.RecordingSHA256)})
	rec(airlock.Event{Actor: bob, Action: "grant.revoked", Resource: "prod-db", RequestID: rq.ID, GrantID: g.ID,
		Details: airlock.EventDetails("user", "alice", "reason", "done", "ends_at", g.EndsAt)})
	if err := store.EndGrant(ctx, g.ID, airlock.GrantRevoked, t0.Add(3*time.Minute), "bob", "done"); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(ctx); err != nil { // writes the checkpoint that covers them
		t.Fatal(err)
	}
	g, _ = store.GrantByID(ctx, g.ID)
	return &fixture{store: store, pub: pub, key: key, grant: g, src: Source{Store: store, PublicKey: audit.MarshalPublicKey(pub), Signer: key, Now: func() time.Time { return t0.Add(time.Hour) },
		Recordings: func(ctx context.Context, key string) (io.ReadCloser, error) {
			if key != "rec/ses_ssh" {
				t.Errorf("recording %q asked for", key)
			}
			return io.NopCloser(strings.NewReader(recording)), nil
		}}}
}

func (f *fixture) pack(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), f.src, f.grant.ID, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteVerify(t *testing.T) {
	f := newFixture(t)
	pack := f.pack(t)
	sum, err := Verify(bytes.NewReader(pack), int64(len(pack)), f.pub)
	if err != nil {
		t.Fatal(err)
	}
	if sum.GrantID != "gr_1" || sum.User != "alice" || sum.Resource != "prod-db" || sum.Access != "read" || sum.Reason != "INC-42 refunds" ||
		sum.Ticket != "OPS-7" || sum.Rule != "devs-read" || sum.PolicyVersion != 1 || sum.EmbeddedKey {
		t.Fatalf("summary %+v", sum)
	}
	if len(sum.Reviews) != 1 || sum.Reviews[0].By != "bob" || sum.Reviews[0].Factor != "totp" || sum.Reviews[0].Decision != "approve" {
		t.Fatalf("reviews %+v", sum.Reviews)
	}
	// request.created, request.reviewed, grant.activated, 2 session
	// starts, 2 queries, 2 ends, grant.revoked: not the other users' events.
	if sum.Events != 10 || len(sum.Sessions) != 2 || sum.Sessions[0].Statements != 2 || !sum.Sessions[1].Recording || !strings.HasPrefix(sum.End, "revoked by bob") {
		t.Fatalf("summary %+v", sum)
	}
	out := sum.String()
	for _, want := range []string{"OK: evidence pack of grant gr_1", "approve by bob with totp", "recording verified", "revoked by bob", "INC-42 refunds (OPS-7)"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// Without a key of its own the pack's key is used, and said so.
	sum, err = Verify(bytes.NewReader(pack), int64(len(pack)), nil)
	if err != nil || !sum.EmbeddedKey || !strings.Contains(sum.String(), "the key in the pack") {
		t.Fatalf("embedded key: %+v %v", sum, err)
	}
	// Another key: refused.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Verify(bytes.NewReader(pack), int64(len(pack)), other); err == nil || !strings.Contains(err.Error(), "not signed by key") {
		t.Fatalf("wrong key: %v", err)
	}
}

// How rewrite leaves the manifest.
const (
	asIs   = iota // digests and signature as they were
	redone        // digests recomputed, old signature: what a forger can do
	signed        // digests recomputed and signed with the server's key: a
	// server that signs what it should not — the checks below the
	// signature still hold
)

// rewrite returns pack with edit applied to its files (delete drops one)
// and the manifest treated as mode says.
func rewrite(t *testing.T, f *fixture, pack []byte, mode int, edit func(files map[string][]byte)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pack), int64(len(pack)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var order []string
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[zf.Name] = b
		order = append(order, zf.Name)
	}
	edit(files)
	var added []string // files edit made: in the manifest too (when redone), after the others
	for n := range files {
		if !contains(order, n) {
			added = append(added, n)
		}
	}
	sort.Strings(added)
	order = append(order, added...)
	if mode != asIs {
		var man Manifest
		json.Unmarshal(files[fileManifest], &man)
		man.Files = nil
		for _, n := range order {
			if b, ok := files[n]; ok && n != fileManifest && n != fileSig {
				s := sha256.Sum256(b)
				man.Files = append(man.Files, FileEntry{Name: n, SHA256: hex.EncodeToString(s[:]), Bytes: int64(len(b))})
			}
		}
		files[fileManifest], _ = json.Marshal(man)
		if mode == signed {
			files[fileSig] = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(f.key, ManifestMessage(files[fileManifest]))))
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range order {
		if b, ok := files[n]; ok {
			w, _ := zw.Create(n)
			w.Write(b)
		}
	}
	zw.Close()
	return buf.Bytes()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestVerifyRefusesTampering(t *testing.T) {
	f := newFixture(t)
	pack := f.pack(t)
	stmt := func(m map[string][]byte) {
		m[fileEvents] = bytes.Replace(m[fileEvents], []byte("select * from orders"), []byte("select * from refund"), 1) // same length
	}
	proofs := func(edit func(*audit.BatchProof)) func(map[string][]byte) {
		return func(m map[string][]byte) {
			var p audit.BatchProof
			json.Unmarshal(m[fileProofs], &p)
			edit(&p)
			m[fileProofs], _ = json.Marshal(p)
		}
	}
	for _, c := range []struct {
		name    string
		mode    int
		edit    func(map[string][]byte)
		wantErr string
	}{
		// What someone without the key can do: every change breaks a
		// digest or the manifest's signature.
		{"a statement edited", asIs, stmt, "hash does not match"}, // found while the file streams, before its digest is done
		{"the policy view edited", asIs, func(m map[string][]byte) {
			m[filePolicy] = bytes.Replace(m[filePolicy], []byte("devs-read"), []byte("admins-al"), 1)
		}, "manifest says"},
		{"a statement edited, digests redone", redone, stmt, "manifest.sig"},
		{"an event dropped, digests redone", redone, func(m map[string][]byte) {
			lines := bytes.SplitAfter(m[fileEvents], []byte("\n"))
			m[fileEvents] = bytes.Join(append(lines[:4:4], lines[5:]...), nil)
		}, "manifest.sig"},
		{"the recording removed", redone, func(m map[string][]byte) { delete(m, dirRecording+"ses_ssh.cast") }, "manifest.sig"},
		{"a file added", asIs, func(m map[string][]byte) { m["../../etc/passwd"] = []byte("x") }, "unexpected file"},
		{"a listed file missing", asIs, func(m map[string][]byte) { delete(m, filePolicy) }, "no policy.json"},
		{"the signature removed", asIs, func(m map[string][]byte) { delete(m, fileSig) }, "no manifest.sig"},
		// What a server signing what it should not cannot get past: each
		// event, proof and view is still checked.
		{"a statement edited, signed", signed, stmt, "hash does not match"},
		{"a proof node forged, signed", signed, proofs(func(p *audit.BatchProof) { p.Nodes[0].Hash = strings.Repeat("ab", 32) }), "not proved"},
		{"a proof node missing, signed", signed, proofs(func(p *audit.BatchProof) { p.Nodes = p.Nodes[1:] }), "is missing"},
		{"the checkpoint's root replaced, signed", signed, proofs(func(p *audit.BatchProof) { p.Checkpoint.Root = strings.Repeat("cd", 32) }), "not signed by this key"},
		{"the grant's view edited, signed", signed, func(m map[string][]byte) {
			m[fileGrant] = bytes.Replace(m[fileGrant], []byte(`"access": "read"`), []byte(`"access": "write"`), 1)
		}, "differs from its proved activation"},
		{"the request's reason edited, signed", signed, func(m map[string][]byte) {
			m[fileRequest] = bytes.Replace(m[fileRequest], []byte("INC-42 refunds"), []byte("routine"), 1)
		}, "request.json differs"},
		{"a review invented, signed", signed, func(m map[string][]byte) {
			m[fileReviews] = []byte(`[{"request_id":"req_1","reviewer_name":"carol","decision":"approve","mfa_method":"webauthn"}]`)
		}, "no proved request.reviewed"},
		{"the recording replaced, signed", signed, func(m map[string][]byte) { m[dirRecording+"ses_ssh.cast"] = []byte("{}\n") }, "the session's end recorded"},
		{"the recording removed, signed", signed, func(m map[string][]byte) { delete(m, dirRecording+"ses_ssh.cast") }, "lacks its recording"},
		{"another grant's event, signed", signed, func(m map[string][]byte) {
			m[fileEvents] = bytes.Replace(m[fileEvents], []byte(`"grant_id":"gr_1","session_id":"ses_db"`), []byte(`"grant_id":"gr_2","session_id":"ses_db"`), 1)
		}, "hash does not match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := rewrite(t, f, pack, c.mode, c.edit)
			_, err := Verify(bytes.NewReader(bad), int64(len(bad)), f.pub)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	if _, err := Verify(bytes.NewReader([]byte("not a zip")), 9, f.pub); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestWriteUnknownGrant(t *testing.T) {
	f := newFixture(t)
	err := Write(context.Background(), f.src, "gr_nope", io.Discard)
	if !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzVerify: whatever the bytes, Verify answers (an error or a summary)
// without panicking, seeded with a real pack (testdata/pack.zip, made by
// newFixture; a file, because building one inside the fuzz target runs
// SQLite under the fuzzer's instrumentation in every worker).
func FuzzVerify(f *testing.F) {
	seed, err := os.ReadFile("testdata/pack.zip")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Verify(bytes.NewReader(b), int64(len(b)), nil)
	})
}

// withKubeSession adds to f's grant a Kubernetes session whose two
// `exec -it` have a recording each (SESSION-1, SESSION-2), as kubegw
// stores them, its events, and a checkpoint over them.
func withKubeSession(t *testing.T, f *fixture) map[string]string {
	t.Helper()
	ctx := context.Background()
	al, err := audit.Open(ctx, f.store, audit.Options{Signer: f.key, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	casts := map[string]string{
		"ses_k8s-1": "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"first exec\\r\\n\"]\n",
		"ses_k8s-2": "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"second exec\\r\\n\"]\n",
	}
	ks := &airlock.Session{ID: "ses_k8s", GrantID: f.grant.ID, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Kind: airlock.KindKubernetes, Access: "edit", StartedAt: t0}
	if err := f.store.CreateSession(ctx, ks); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ses_k8s-1", "ses_k8s-2"} {
		sum := sha256.Sum256([]byte(casts[id]))
		ks.Recordings = append(ks.Recordings, airlock.SessionRecording{ID: id, SHA256: hex.EncodeToString(sum[:]), Title: "exec payments/web-1: sh"})
	}
	ks.EndedAt, ks.EndReason = t0.Add(2*time.Minute), "grant_revoked"
	if err := f.store.EndSession(ctx, ks); err != nil {
		t.Fatal(err)
	}
	alice := airlock.Actor{ID: "usr_a", Name: "alice"}
	for _, e := range []airlock.Event{
		{Actor: alice, Action: "session.started", Resource: "prod-db", GrantID: f.grant.ID, SessionID: ks.ID},
		{Actor: alice, Action: "session.ended", Resource: "prod-db", GrantID: f.grant.ID, SessionID: ks.ID,
			Details: airlock.EventDetails("end_reason", "grant_revoked", "recordings", ks.Recordings)},
	} {
		e.Outcome = airlock.OutcomeSuccess
		if _, err := al.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := al.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f.src.Recordings = func(ctx context.Context, key string) (io.ReadCloser, error) {
		if key == "rec/ses_ssh" {
			return io.NopCloser(strings.NewReader(recording)), nil
		}
		c, ok := casts[key]
		if !ok {
			t.Errorf("recording %q asked for", key)
		}
		return io.NopCloser(strings.NewReader(c)), nil
	}
	return casts
}

// TestPartRecordings: each exec -it of a Kubernetes session is in the
// pack as a recording of its own, checked against the session's proved
// end; one swapped, dropped or claimed by another session is refused.
func TestPartRecordings(t *testing.T) {
	f := newFixture(t)
	casts := withKubeSession(t, f)
	pack := f.pack(t)
	sum, err := Verify(bytes.NewReader(pack), int64(len(pack)), f.pub)
	if err != nil {
		t.Fatal(err)
	}
	var k *SessionSummary
	for i := range sum.Sessions {
		if sum.Sessions[i].ID == "ses_k8s" {
			k = &sum.Sessions[i]
		}
	}
	if k == nil || !k.Recording || k.Recordings != 2 || k.Kind != airlock.KindKubernetes {
		t.Fatalf("kubernetes session in the summary: %+v", k)
	}
	if !strings.Contains(sum.String(), "2 recordings verified") {
		t.Fatalf("summary:\n%s", sum)
	}
	for name, want := range map[string]string{dirRecording + "ses_k8s-1.cast": casts["ses_k8s-1"], dirRecording + "ses_k8s-2.cast": casts["ses_k8s-2"]} {
		zr, _ := zip.NewReader(bytes.NewReader(pack), int64(len(pack)))
		rc, err := zr.Open(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(rc)
		if string(b) != want {
			t.Fatalf("%s: %q", name, b)
		}
	}
	for _, c := range []struct {
		name    string
		edit    func(map[string][]byte)
		wantErr string
	}{
		{"two recordings swapped", func(m map[string][]byte) {
			m[dirRecording+"ses_k8s-1.cast"], m[dirRecording+"ses_k8s-2.cast"] = m[dirRecording+"ses_k8s-2.cast"], m[dirRecording+"ses_k8s-1.cast"]
		}, "the session's end recorded"},
		{"one dropped", func(m map[string][]byte) { delete(m, dirRecording+"ses_k8s-2.cast") }, "lacks its recording"},
		{"one added", func(m map[string][]byte) { m[dirRecording+"ses_k8s-3.cast"] = []byte(casts["ses_k8s-1"]) }, "no proved session.ended"},
		{"the view gives a part to another session", func(m map[string][]byte) {
			m[fileSessions] = bytes.Replace(m[fileSessions], []byte(`"id": "ses_k8s"`), []byte(`"id": "ses_ssh"`), 1)
		}, "recording ses_k8s-1 of session ses_ssh is not what its proved end recorded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := rewrite(t, f, pack, signed, c.edit)
			_, err := Verify(bytes.NewReader(bad), int64(len(bad)), f.pub)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

// TestPartRecordingsOfALostNode: a Kubernetes session whose node stopped
// without ending it is ended by another node as node_lost, and that end
// lists no recordings; the exec -it that finished before is announced by
// its own k8s.response (id and digest). The pack holds that recording and
// the verifier checks it against the k8s.response; dropped, swapped for
// other bytes, or claimed by the response of another session, it is
// refused.
func TestPartRecordingsOfALostNode(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	al, err := audit.Open(ctx, f.store, audit.Options{Signer: f.key, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	cast := "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"before the node was lost\\r\\n\"]\n"
	sum := sha256.Sum256([]byte(cast))
	digest := hex.EncodeToString(sum[:])
	ks := &airlock.Session{ID: "ses_lost", GrantID: f.grant.ID, UserID: "usr_a", UserName: "alice", Resource: "prod-db", Kind: airlock.KindKubernetes, Access: "edit", StartedAt: t0}
	if err := f.store.CreateSession(ctx, ks); err != nil {
		t.Fatal(err)
	}
	ks.EndedAt, ks.EndReason = t0.Add(time.Minute), string(airlock.EndNodeLost)
	if err := f.store.EndSession(ctx, ks); err != nil {
		t.Fatal(err)
	}
	alice := airlock.Actor{ID: "usr_a", Name: "alice"}
	for _, e := range []airlock.Event{
		{Actor: alice, Action: "session.started", GrantID: f.grant.ID, SessionID: ks.ID},
		{Actor: alice, Action: "k8s.request", GrantID: f.grant.ID, SessionID: ks.ID, Details: airlock.EventDetails("n", 1, "subresource", "exec", "tty", true)},
		{Actor: alice, Action: "k8s.response", GrantID: f.grant.ID, SessionID: ks.ID,
			Details: airlock.EventDetails("n", 1, "status", 101, "recorded", true, "recording", "ses_lost-1", "recording_sha256", digest)},
		{Actor: airlock.Actor{ID: "system", Name: "system"}, Action: "session.ended", GrantID: f.grant.ID, SessionID: ks.ID,
			Details: airlock.EventDetails("end_reason", airlock.EndNodeLost, "node", "n1", "ended_by", "n2")},
	} {
		e.Resource, e.Outcome = "prod-db", airlock.OutcomeSuccess
		if _, err := al.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := al.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f.src.Recordings = func(ctx context.Context, key string) (io.ReadCloser, error) {
		switch key {
		case "rec/ses_ssh":
			return io.NopCloser(strings.NewReader(recording)), nil
		case "ses_lost-1":
			return io.NopCloser(strings.NewReader(cast)), nil
		}
		t.Errorf("recording %q asked for", key)
		return nil, os.ErrNotExist
	}
	pack := f.pack(t)
	got, err := Verify(bytes.NewReader(pack), int64(len(pack)), f.pub)
	if err != nil {
		t.Fatal(err)
	}
	var k *SessionSummary
	for i := range got.Sessions {
		if got.Sessions[i].ID == ks.ID {
			k = &got.Sessions[i]
		}
	}
	if k == nil || !k.Recording || k.Recordings != 1 || k.UnendedTerminals != 0 || k.EndReason != string(airlock.EndNodeLost) {
		t.Fatalf("the lost node's session in the summary: %+v", k)
	}
	// A second exec -it was still running when the node was lost: its
	// request is proved, no response ends it, and its recording is in no
	// pack. The session's recording is then not "verified".
	al2, err := audit.Open(ctx, f.store, audit.Options{Signer: f.key, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := al2.Append(ctx, airlock.Event{Actor: alice, Action: "k8s.request", Resource: "prod-db", GrantID: f.grant.ID, SessionID: ks.ID,
		Outcome: airlock.OutcomeSuccess, Details: airlock.EventDetails("n", 2, "subresource", "exec", "tty", true)}); err != nil {
		t.Fatal(err)
	}
	if err := al2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cut := f.pack(t)
	cutSum, err := Verify(bytes.NewReader(cut), int64(len(cut)), f.pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, ss := range cutSum.Sessions {
		if ss.ID == ks.ID && (ss.Recording || ss.Recordings != 1 || ss.UnendedTerminals != 1) {
			t.Fatalf("a session with an exec -it no response ends: %+v", ss)
		}
	}
	if !strings.Contains(cutSum.String(), "1 exec/attach terminal(s) with no recorded end") {
		t.Fatalf("summary:\n%s", cutSum)
	}
	for _, c := range []struct {
		name    string
		edit    func(map[string][]byte)
		wantErr string
	}{
		{"dropped", func(m map[string][]byte) { delete(m, dirRecording+"ses_lost-1.cast") }, "lacks its recording"},
		{"other bytes", func(m map[string][]byte) { m[dirRecording+"ses_lost-1.cast"] = []byte("{}\n") }, "the session's end recorded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := rewrite(t, f, pack, signed, c.edit)
			if _, err := Verify(bytes.NewReader(bad), int64(len(bad)), f.pub); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

// A k8s.response naming a recording of another session is refused: the
// verifier takes a part only from its own session's events.
func TestPartRecordingOfAnotherSession(t *testing.T) {
	f := newFixture(t)
	ev := &airlock.Event{Action: "k8s.response", SessionID: "ses_a", GrantID: f.grant.ID,
		Details: airlock.EventDetails("recording", "ses_b-1", "recording_sha256", strings.Repeat("ab", 32))}
	facts := newEventFacts(f.grant.ID, "")
	if err := facts.add(ev); err != nil {
		t.Fatal(err)
	}
	var sum Summary
	if err := facts.check(f.grant, nil, &sum); err == nil || !strings.Contains(err.Error(), "not one of its own") {
		t.Fatalf("err = %v", err)
	}
}

// The writer takes a part recording only from a k8s.response that
// stands, as the verifier reads the log: not from one a retraction
// strikes, nor from a retraction itself.
func TestAnnouncedPartsOnlyFromStandingEvents(t *testing.T) {
	sessions := []*airlock.Session{{ID: "ses_k"}}
	resp := airlock.Event{Seq: 5, Action: "k8s.response", SessionID: "ses_k", Outcome: airlock.OutcomeSuccess,
		Details: airlock.EventDetails("recording", "ses_k-1", "recording_sha256", strings.Repeat("ab", 32))}
	if got := announcedParts(sessions, []airlock.Event{resp}); len(got["ses_k"]) != 1 {
		t.Fatalf("a standing response: %v", got)
	}
	struck := audit.Retraction(resp, 5, errors.New("no"))
	struck.Seq = 6
	if got := announcedParts(sessions, []airlock.Event{resp, struck}); len(got["ses_k"]) != 0 {
		t.Fatalf("a retracted response still gave %v", got)
	}
	other := airlock.Event{Seq: 7, Action: "k8s.response", SessionID: "ses_k", Outcome: airlock.OutcomeSuccess,
		Details: airlock.EventDetails("recording", "ses_k-../../etc", "recording_sha256", "x")}
	if got := announcedParts(sessions, []airlock.Event{other}); len(got["ses_k"]) != 0 {
		t.Fatalf("an id not of the form SESSION-N was taken: %v", got)
	}
}
