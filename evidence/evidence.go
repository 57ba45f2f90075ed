// Package evidence makes and checks evidence packs: everything an auditor
// asks about one grant — the request (reason, ticket), the policy rule and
// version that decided it, every review with its approver and factor, the
// grant, every session with its statements or recording, its end and the
// reason — in one zip, with an inclusion proof for every audit event in it
// against a signed tree head, so that Verify can check it offline with
// only the checkpoint public key and no server.
//
// The audit events are the evidence; the JSON files beside them (grant,
// request, reviews, sessions, policy) are views of the store that Verify
// checks against the events where the events say the same thing.
package evidence

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
)

// Format names the pack layout (manifest.json's "format").
const Format = "airlock-evidence-v1"

// The files of a pack. Recordings are "recordings/SESSION_ID.cast".
const (
	fileManifest = "manifest.json"
	fileSig      = "manifest.sig"
	fileGrant    = "grant.json"
	fileRequest  = "request.json"
	fileReviews  = "reviews.json"
	fileSessions = "sessions.json"
	filePolicy   = "policy.json"
	fileEvents   = "events.jsonl"
	fileProofs   = "proofs.json"
	filePubkey   = "pubkey.pem"
	dirRecording = "recordings/"
)

// Manifest lists a pack's files with their SHA-256.
type Manifest struct {
	Format    string      `json:"format"`
	GrantID   string      `json:"grant_id"`
	CreatedAt time.Time   `json:"created_at"`
	Files     []FileEntry `json:"files"`
}

// FileEntry is one file of a pack.
type FileEntry struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Policy is the policy that decided the request: its version and rule, and
// the document itself when the store still holds that version (it keeps
// the current one).
type Policy struct {
	Version  int64  `json:"version"`
	Rule     string `json:"rule"`
	SHA256   string `json:"sha256,omitempty"`
	Document string `json:"document,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Source is what a pack is made from.
type Source struct {
	Store airlock.Store
	// Recordings opens a session recording by its storage key (nil: the
	// pack cannot hold recordings, and a grant with one is refused).
	Recordings func(ctx context.Context, key string) (io.ReadCloser, error)
	// PublicKey is the checkpoint public key, PEM.
	PublicKey []byte
	// Signer is the checkpoint key: it signs the manifest (ManifestMessage),
	// so that nothing can be added to or left out of a pack after it was
	// made without the verification failing.
	Signer ed25519.PrivateKey
	Now    func() time.Time
}

// requestWindow bounds the events of a request looked for around it: its
// events are written between its creation and its decision.
const requestSlack = time.Minute

// errWindowEnd stops the scan of a request's window.
var errWindowEnd = errors.New("past the request's window")

// Pack is a grant's evidence, read and proved, ready to be written.
type Pack struct {
	src      Source
	grant    *airlock.Grant
	request  *airlock.AccessRequest
	reviews  []*airlock.Review
	sessions []*airlock.Session
	// parts are the recordings of each session's exec -it that its
	// k8s.response events announce, beside those its row lists (a session
	// ended as node_lost has none in its row: the node that held it did
	// not end it).
	parts  map[string][]string
	events []airlock.Event
	proofs *audit.BatchProof
	policy Policy
}

// Prepare reads and proves everything grantID's pack holds but its
// recordings, so that a caller knows the pack can be made (and can audit
// that it is) before writing a byte. ENOTFOUND when there is no such
// grant; EUNAVAILABLE when no signed tree head covers the grant's events
// yet (retry after the next checkpoint).
func Prepare(ctx context.Context, src Source, grantID string) (*Pack, error) {
	st := src.Store
	if len(src.Signer) != ed25519.PrivateKeySize {
		return nil, airlock.Errorf(airlock.EINTERNAL, "evidence packs need the checkpoint key")
	}
	g, err := st.GrantByID(ctx, grantID)
	if err != nil {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no grant %q", grantID)
	}
	p := &Pack{src: src, grant: g, reviews: []*airlock.Review{}}
	if g.RequestID != "" {
		if p.request, err = st.RequestByID(ctx, g.RequestID); err != nil {
			return nil, err
		}
		if p.reviews, err = st.ListReviews(ctx, g.RequestID); err != nil {
			return nil, err
		}
	}
	if p.sessions, err = st.ListSessions(ctx, airlock.SessionFilter{GrantID: g.ID}); err != nil {
		return nil, err
	}
	slices.Reverse(p.sessions) // oldest first
	if p.events, err = grantEvents(ctx, st, g, p.request); err != nil {
		return nil, err
	}
	p.parts = announcedParts(p.sessions, p.events)
	for _, s := range p.sessions {
		if (s.Recording != "" || len(p.parts[s.ID]) > 0) && src.Recordings == nil {
			return nil, airlock.Errorf(airlock.EUNAVAILABLE, "session %s has a recording and this server cannot open recordings", s.ID)
		}
	}
	if p.proofs, err = prove(ctx, st, p.events); err != nil {
		return nil, err
	}
	p.policy = policyView(ctx, st, p.request)
	return p, nil
}

// announcedParts lists, per session, the ids of its part recordings: those
// its row lists, then those only its k8s.response events announce (an exec
// that ended before its node was lost), each once. An id must be the
// session's own (SESSION-N) to be taken: it names a file in the pack and
// the key the recording is read by.
func announcedParts(sessions []*airlock.Session, events []airlock.Event) map[string][]string {
	parts := make(map[string][]string, len(sessions))
	seen := map[string]bool{}
	take := func(session, id string) {
		if !partOf(session, id) || seen[id] {
			return
		}
		seen[id] = true
		parts[session] = append(parts[session], id)
	}
	ofGrant := make(map[string]bool, len(sessions))
	for _, s := range sessions {
		ofGrant[s.ID] = true
		for _, r := range s.Recordings {
			take(s.ID, r.ID)
		}
	}
	// Only events that stand, as the verifier reads them: a recording
	// only a retracted response announced would be refused there.
	retracted := map[int64]bool{}
	for i := range events {
		if seq, is := audit.RetractedSeq(&events[i]); is {
			retracted[seq], retracted[events[i].Seq] = true, true
		}
	}
	for i := range events {
		e := &events[i]
		if e.Action != "k8s.response" || !ofGrant[e.SessionID] || retracted[e.Seq] {
			continue
		}
		var d struct {
			Recording string `json:"recording"`
		}
		if json.Unmarshal(e.Details, &d) == nil && d.Recording != "" {
			take(e.SessionID, d.Recording)
		}
	}
	return parts
}

// Write writes the evidence pack of grantID to w (a zip): Prepare, then
// WriteTo.
func Write(ctx context.Context, src Source, grantID string, w io.Writer) error {
	p, err := Prepare(ctx, src, grantID)
	if err != nil {
		return err
	}
	return p.WriteTo(ctx, w)
}

// WriteTo writes the pack (a zip) to w, reading the recordings as it goes.
func (p *Pack) WriteTo(ctx context.Context, w io.Writer) error {
	src, g, rq, reviews, sessions, events, proofs, pol := p.src, p.grant, p.request, p.reviews, p.sessions, p.events, p.proofs, p.policy
	zw := zip.NewWriter(w)
	man := Manifest{Format: Format, GrantID: g.ID, CreatedAt: src.now().UTC()}
	add := func(name string, write func(io.Writer) error) error {
		fw, err := zw.Create(name)
		if err != nil {
			return err
		}
		h := sha256.New()
		cw := &countWriter{w: io.MultiWriter(fw, h)}
		bw := bufio.NewWriterSize(cw, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		man.Files = append(man.Files, FileEntry{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: cw.n})
		return nil
	}
	addJSON := func(name string, v any) error {
		return add(name, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		})
	}
	steps := []struct {
		name string
		v    any
	}{{fileGrant, g}, {fileRequest, rq}, {fileReviews, reviews}, {fileSessions, sessions}, {filePolicy, pol}, {fileProofs, proofs}}
	for _, s := range steps {
		if err := addJSON(s.name, s.v); err != nil {
			return err
		}
	}
	if err := add(fileEvents, func(w io.Writer) error {
		// Each event as a proof's event: its details a JSON string of the
		// exact bytes its hash covers, which no re-encoding changes.
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := range events {
			if err := enc.Encode(audit.NewProofEvent(events[i])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, s := range sessions {
		// An SSH session's terminal is stored under the session's ID;
		// each exec -it of a Kubernetes session under its own.
		type rec struct{ file, key string }
		var recs []rec
		if s.Recording != "" {
			recs = append(recs, rec{s.ID, s.Recording})
		}
		for _, id := range p.parts[s.ID] {
			recs = append(recs, rec{id, id})
		}
		for _, r := range recs {
			rc, err := src.Recordings(ctx, r.key)
			if err != nil {
				return airlock.WrapError(airlock.EUNAVAILABLE, fmt.Sprintf("session %s: its recording %s cannot be read", s.ID, r.file), err)
			}
			err = add(dirRecording+r.file+".cast", func(w io.Writer) error { _, err := io.Copy(w, rc); return err })
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := add(filePubkey, func(w io.Writer) error { _, err := w.Write(src.PublicKey); return err }); err != nil {
		return err
	}
	mb, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{fileManifest, mb}, {fileSig, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(src.Signer, ManifestMessage(mb))) + "\n")}} {
		fw, err := zw.Create(f.name)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.b); err != nil {
			return err
		}
	}
	return zw.Close()
}

// ManifestMessage is what a pack's manifest.sig signs: a prefix no other
// signature of the checkpoint key starts with (checkpoints sign
// "airlock-checkpoint-v…"), then the manifest's bytes.
func ManifestMessage(manifest []byte) []byte {
	return append([]byte("airlock-evidence-manifest-v1\n"), manifest...)
}

func (s Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// grantEvents returns, ordered by seq, every event of the grant (its
// activation, sessions, statements, end) and of its request (creation,
// reviews), which carry the request's ID but no grant's.
func grantEvents(ctx context.Context, st airlock.Store, g *airlock.Grant, rq *airlock.AccessRequest) ([]airlock.Event, error) {
	evs, err := st.ListEvents(ctx, airlock.EventFilter{GrantID: g.ID})
	if err != nil {
		return nil, err
	}
	if rq != nil {
		until := rq.DecidedAt
		if until.IsZero() {
			until = g.CreatedAt
		}
		// Streamed, keeping only the request's events: a request that
		// waited a day for its review spans a day of the whole log.
		since, end := rq.CreatedAt.Add(-requestSlack), until.Add(requestSlack)
		first, err := st.ListEvents(ctx, airlock.EventFilter{Since: since, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(first) > 0 {
			err = st.ScanEvents(ctx, first[0].Seq-1, func(e airlock.Event) error {
				if e.Time.After(end.Add(requestSlack)) {
					// Past the window by a further requestSlack: events are
					// stored in seq order and stamped by their writer's
					// clock, so one of the window can follow a later one
					// only by as much as the replicas' clocks differ.
					return errWindowEnd
				}
				if e.RequestID == rq.ID && e.GrantID == "" && !e.Time.Before(since) && !e.Time.After(end) {
					evs = append(evs, e)
				}
				return nil
			})
			if err != nil && !errors.Is(err, errWindowEnd) {
				return nil, err
			}
		}
	}
	slices.SortFunc(evs, func(a, b airlock.Event) int { return int(a.Seq - b.Seq) })
	return slices.CompactFunc(evs, func(a, b airlock.Event) bool { return a.Seq == b.Seq }), nil
}

// policyView is the policy that decided rq, with its document when the
// store's current policy is that version.
func policyView(ctx context.Context, st airlock.Store, rq *airlock.AccessRequest) Policy {
	if rq == nil {
		return Policy{Note: "the grant has no request"}
	}
	p := Policy{Version: rq.PolicyVersion, Rule: rq.Rule}
	cur, err := st.CurrentPolicy(ctx)
	switch {
	case err != nil:
		p.Note = "no policy document is stored"
	case cur.Version == rq.PolicyVersion:
		p.SHA256, p.Document = cur.SHA256, string(cur.Document)
	default:
		p.Note = fmt.Sprintf("the store keeps only the current policy (version %d); version %d's digest is in its policy.applied event in the audit log", cur.Version, rq.PolicyVersion)
	}
	return p
}

// prove returns the batch inclusion proof of events against the latest
// signed tree head, which must cover all of them.
func prove(ctx context.Context, st airlock.Store, events []airlock.Event) (*audit.BatchProof, error) {
	cp, err := audit.LatestTreeCheckpoint(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(events) > 0 && events[len(events)-1].Seq > cp.Seq {
		return nil, airlock.Errorf(airlock.EUNAVAILABLE, "the grant's latest event (seq %d) is after the latest signed tree head (size %d); retry after the next checkpoint",
			events[len(events)-1].Seq, cp.Seq)
	}
	seqs := make([]int64, len(events))
	for i, e := range events {
		seqs[i] = e.Seq
	}
	return audit.ProveEvents(ctx, st, seqs, cp)
}
