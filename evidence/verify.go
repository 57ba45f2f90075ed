package evidence

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
)

// Bounds on what Verify reads: a pack is untrusted input.
const (
	maxFiles      = 100_000
	maxJSONFile   = 64 << 20  // reviews.json and sessions.json, read entry by entry up to what the events account for
	maxSmallView  = 1 << 20   // grant.json, request.json
	maxPolicyView = 16 << 20  // policy.json (the policy document)
	maxProofsFile = 256 << 20 // proofs.json
	maxEventsFile = 4 << 30
	maxRecording  = 4 << 30
	maxEventLine  = 1 << 20
	maxManifest   = 16 << 20
)

var recordingName = regexp.MustCompile(`^recordings/[A-Za-z0-9_-]{1,64}\.cast$`)

// Summary is what a verified pack shows, read from its proved events.
type Summary struct {
	GrantID       string           `json:"grant_id"`
	User          string           `json:"user"`
	Resource      string           `json:"resource"`
	Access        string           `json:"access"`
	StartsAt      time.Time        `json:"starts_at"`
	EndsAt        time.Time        `json:"ends_at"`
	BreakGlass    bool             `json:"break_glass"`
	Reason        string           `json:"reason"`
	Ticket        string           `json:"ticket"`
	Rule          string           `json:"rule"`
	PolicyVersion int64            `json:"policy_version"`
	Reviews       []ReviewSummary  `json:"reviews"`
	Acknowledged  string           `json:"acknowledged"` // break-glass acknowledged by
	Sessions      []SessionSummary `json:"sessions"`
	End           string           `json:"end"` // "expired at …" / "revoked by … at …: reason" / "" while active
	Events        int              `json:"events"`
	TreeSize      int64            `json:"tree_size"`
	SignedAt      time.Time        `json:"signed_at"`
	KeyID         string           `json:"key_id"`
	// EmbeddedKey is true when the pack was checked with the key it
	// carries rather than one the caller trusts.
	EmbeddedKey bool `json:"embedded_key"`
}

// ReviewSummary is one review as its event records it.
type ReviewSummary struct {
	By       string    `json:"by"`
	Decision string    `json:"decision"`
	Factor   string    `json:"factor"`
	At       time.Time `json:"at"`
}

// SessionSummary is one session as its events record it.
type SessionSummary struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended"`
	EndReason  string    `json:"end_reason"`
	Statements int       `json:"statements"`
	Recording  bool      `json:"recording_verified"` // its recordings are all in the pack and their hashes match
	Recordings int       `json:"recordings"`         // how many of its recordings were verified
	// UnendedTerminals counts its exec/attach requests with a terminal
	// that no proved k8s.response ends: still running when the pack was
	// made, or cut off with their node. Their recordings are not in the
	// pack, and the session's recording is then not verified.
	UnendedTerminals int `json:"terminals_without_end,omitempty"`
}

// Verify checks the pack in r offline: the manifest's digest of every
// file, the checkpoint's signature, every event's hash against its content
// and its inclusion in the signed tree, that every event belongs to the
// grant, and the JSON views and recordings against the events. pub is the
// checkpoint key the caller trusts; nil uses the key in the pack (which
// proves only that the pack is self-consistent — compare Summary.KeyID
// with the server's). Any failure is an error naming what is wrong.
func Verify(r io.ReaderAt, size int64, pub ed25519.PublicKey) (*Summary, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not an evidence pack: %v", err)
	}
	if err := wholeZip(r, zr); err != nil {
		return nil, err
	}
	if len(zr.File) > maxFiles {
		return nil, fmt.Errorf("the pack holds %d files, more than %d", len(zr.File), maxFiles)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		name := f.Name
		known := slices.Contains([]string{fileManifest, fileSig, fileGrant, fileRequest, fileReviews, fileSessions, filePolicy, fileEvents, fileProofs, filePubkey}, name) ||
			recordingName.MatchString(name)
		if !known {
			return nil, fmt.Errorf("the pack holds an unexpected file %q", name)
		}
		if files[name] != nil {
			return nil, fmt.Errorf("the pack holds %q twice", name)
		}
		files[name] = f
	}
	for _, need := range []string{fileManifest, fileSig, fileGrant, fileRequest, fileReviews, fileSessions, filePolicy, fileEvents, fileProofs, filePubkey} {
		if files[need] == nil {
			return nil, fmt.Errorf("the pack has no %s", need)
		}
	}
	v := &packVerifier{files: files}

	// The key, then the tree head it signs.
	pemBytes, err := v.readAll(filePubkey, 64<<10)
	if err != nil {
		return nil, err
	}
	sum := &Summary{}
	if pub == nil {
		if pub, err = audit.ParsePublicKey(pemBytes); err != nil {
			return nil, fmt.Errorf("pubkey.pem: %v", err)
		}
		sum.EmbeddedKey = true
	}
	// The manifest, signed by the checkpoint key.
	mb, err := v.readAll(fileManifest, maxManifest)
	if err != nil {
		return nil, err
	}
	sigText, err := v.readAll(fileSig, 1024)
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
	if err != nil || !ed25519.Verify(pub, ManifestMessage(mb), sig) {
		return nil, fmt.Errorf("manifest.sig: the manifest is not signed by key %s (the pack was changed, or it is another server's)", audit.KeyID(pub))
	}
	var man Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, fmt.Errorf("manifest.json: %v", err)
	}
	if man.Format != Format {
		return nil, fmt.Errorf("manifest format %q, want %q", man.Format, Format)
	}
	v.digests = map[string]FileEntry{}
	for _, fe := range man.Files {
		if fe.Name == fileManifest || fe.Name == fileSig || files[fe.Name] == nil {
			return nil, fmt.Errorf("the manifest lists %q, which the pack does not hold", fe.Name)
		}
		if _, dup := v.digests[fe.Name]; dup {
			return nil, fmt.Errorf("the manifest lists %q twice", fe.Name)
		}
		v.digests[fe.Name] = fe
	}
	for name := range files {
		if _, ok := v.digests[name]; !ok && name != fileManifest && name != fileSig {
			return nil, fmt.Errorf("%s is not in the manifest", name)
		}
	}

	sum.GrantID = man.GrantID
	if _, err := v.readAll(filePubkey, 64<<10); err != nil { // now against its digest
		return nil, err
	}

	var proofs audit.BatchProof
	if err := v.readJSON(fileProofs, &proofs, maxProofsFile); err != nil {
		return nil, err
	}
	cp := proofs.Checkpoint
	bv, err := proofs.Verifier(pub)
	if err != nil {
		return nil, fmt.Errorf("proofs.json: %v (key %s)", err, audit.KeyID(pub))
	}
	sum.TreeSize, sum.SignedAt, sum.KeyID = cp.Seq, cp.Time, audit.KeyID(pub)

	// The small views now; reviews and sessions after the events, entry by
	// entry and no more entries than the events account for (a pack made
	// with its own key may declare views of any size).
	var g airlock.Grant
	var rq *airlock.AccessRequest
	var pol Policy
	for _, x := range []struct {
		name  string
		v     any
		limit int64
	}{{fileGrant, &g, maxSmallView}, {fileRequest, &rq, maxSmallView}, {filePolicy, &pol, maxPolicyView}} {
		if err := v.readJSON(x.name, x.v, x.limit); err != nil {
			return nil, err
		}
	}
	if g.ID != man.GrantID {
		return nil, fmt.Errorf("grant.json is grant %q, the manifest names %q", g.ID, man.GrantID)
	}

	// The events: each hashed, proved, and the grant's.
	ev := newEventFacts(g.ID, g.RequestID)
	err = v.stream(fileEvents, maxEventsFile, func(r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxEventLine)
		var last int64
		for sc.Scan() {
			var pe audit.ProofEvent
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&pe); err != nil {
				return fmt.Errorf("events.jsonl line %d: %v", sum.Events+1, err)
			}
			e := pe.AuditEvent()
			if e.Seq <= last {
				return fmt.Errorf("events.jsonl: event %d after event %d", e.Seq, last)
			}
			last = e.Seq
			if audit.Hash(e) != e.Hash {
				return fmt.Errorf("event %d: its hash does not match its content (edited?)", e.Seq)
			}
			if err := bv.Verify(e); err != nil {
				return err
			}
			if err := ev.add(&e); err != nil {
				return err
			}
			sum.Events++
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("events.jsonl: %v", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := ev.check(&g, rq, sum); err != nil {
		return nil, err
	}
	if err := ev.checkViews(v, sum); err != nil {
		return nil, err
	}

	// Recordings: each a session's, its digest what the session's proved
	// session.ended event recorded.
	for name := range files {
		if !strings.HasPrefix(name, dirRecording) {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(name, dirRecording), ".cast")
		want, ok := ev.recordings[id]
		if !ok {
			return nil, fmt.Errorf("%s: no proved session.ended or k8s.response event records a recording of session %s", name, id)
		}
		if got := v.digests[name].SHA256; got != want {
			return nil, fmt.Errorf("%s: SHA-256 %s, the session's end recorded %s", name, got, want)
		}
		if err := v.stream(name, maxRecording, func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }); err != nil {
			return nil, err
		}
		if i, ok := ev.sessIdx[ev.recSession[id]]; ok {
			sum.Sessions[i].Recordings++
			sum.Sessions[i].Recording = sum.Sessions[i].Recordings == ev.perSession[ev.recSession[id]]
		}
	}
	for id := range ev.recordings {
		if files[dirRecording+id+".cast"] == nil {
			return nil, fmt.Errorf("session %s was recorded and the pack lacks its recording", id)
		}
	}
	for i := range sum.Sessions {
		if sum.Sessions[i].UnendedTerminals > 0 {
			sum.Sessions[i].Recording = false
		}
	}
	if pol.Version != 0 && pol.Version != sum.PolicyVersion || pol.Rule != "" && pol.Rule != sum.Rule {
		return nil, fmt.Errorf("policy.json (version %d, rule %s) is not what the request was decided under (version %d, rule %s)", pol.Version, pol.Rule, sum.PolicyVersion, sum.Rule)
	}
	return sum, nil
}

// wholeZip refuses bytes outside the archive: archive/zip reads a zip from
// its end and takes whatever precedes the first entry as prepended data,
// where a reader that walks local headers from the start would meet
// other, forged entries first. The first entry's local header must be at
// offset 0, and no archive comment may follow the directory.
func wholeZip(r io.ReaderAt, zr *zip.Reader) error {
	if len(zr.File) == 0 {
		return fmt.Errorf("not an evidence pack: the zip is empty")
	}
	first := zr.File[0]
	firstOff, err := first.DataOffset()
	if err != nil {
		return fmt.Errorf("not an evidence pack: %v", err)
	}
	for _, f := range zr.File[1:] {
		if off, err := f.DataOffset(); err == nil && off < firstOff {
			first, firstOff = f, off
		}
	}
	var h [30]byte
	if _, err := r.ReadAt(h[:], 0); err != nil || string(h[:4]) != "PK\x03\x04" {
		return fmt.Errorf("not an evidence pack: it does not start with a zip entry")
	}
	nameLen, extraLen := int64(binary.LittleEndian.Uint16(h[26:])), int64(binary.LittleEndian.Uint16(h[28:]))
	name := make([]byte, nameLen)
	if _, err := r.ReadAt(name, 30); err != nil || string(name) != first.Name || 30+nameLen+extraLen != firstOff {
		return fmt.Errorf("not an evidence pack: bytes precede its first entry (another archive in front of it?)")
	}
	if zr.Comment != "" {
		return fmt.Errorf("not an evidence pack: it carries an archive comment")
	}
	return nil
}

// packVerifier reads a pack's files, each checked against the manifest.
type packVerifier struct {
	files   map[string]*zip.File
	digests map[string]FileEntry
}

// stream hands fn the file's content and then checks that it was all read
// and matches the manifest's size and digest.
func (v *packVerifier) stream(name string, limit int64, fn func(io.Reader) error) error {
	f := v.files[name]
	// A file is read no further than it may be: its size in the manifest
	// once that is known, else the limit for its kind. archive/zip fails a
	// read past the size an entry declares, so checking the declaration
	// bounds the inflating too (a small entry cannot expand to gigabytes).
	if fe, ok := v.digests[name]; ok {
		limit = min(limit, fe.Bytes)
	}
	if f.UncompressedSize64 > uint64(limit) {
		return fmt.Errorf("%s is %d bytes, more than the %d it may be", name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	defer rc.Close()
	h := sha256.New()
	lr := &io.LimitedReader{R: rc, N: limit + 1}
	tr := io.TeeReader(lr, h)
	if err := fn(tr); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tr); err != nil { // what fn left unread still counts
		return fmt.Errorf("%s: %v", name, err)
	}
	if lr.N <= 0 {
		return fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	if fe, ok := v.digests[name]; ok {
		if got := hex.EncodeToString(h.Sum(nil)); got != fe.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s, the manifest says %s (changed after the pack was made)", name, got, fe.SHA256)
		}
		if read := limit + 1 - lr.N; read != fe.Bytes {
			return fmt.Errorf("%s: %d bytes, the manifest says %d", name, read, fe.Bytes)
		}
	}
	return nil
}

func (v *packVerifier) readAll(name string, limit int64) ([]byte, error) {
	var b []byte
	err := v.stream(name, limit, func(r io.Reader) (err error) { b, err = io.ReadAll(r); return err })
	return b, err
}

func (v *packVerifier) readJSON(name string, dst any, limit int64) error {
	b, err := v.readAll(name, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	return nil
}

// eventFacts gathers what the proved events say about the grant.
type eventFacts struct {
	grantID, requestID string
	retracted          map[int64]bool
	events             []airlock.Event
	// recordings maps a recording's id (an SSH session's own ID, or
	// SESSION-N for a part of a Kubernetes session) to its SHA-256, and
	// recSession the same id to its session, as proved session.ended and k8s.response
	// events record them.
	recordings map[string]string
	recSession map[string]string
	perSession map[string]int // session ID → how many recordings its events record
	sessIdx    map[string]int // session ID → its index in Summary.Sessions
}

// terminalKey names an exec or attach request of a session by its n.
type terminalKey struct {
	session string
	n       float64
}

// partOf reports whether id names a part recording of session: SESSION-N,
// N decimal digits, 64 characters at most (a file name in the pack and the
// key the writer reads it by).
func partOf(session, id string) bool {
	n, ok := strings.CutPrefix(id, session+"-")
	return ok && n != "" && strings.Trim(n, "0123456789") == "" && len(id) <= 64
}

// recorded notes that a proved event of session (its end, or the
// k8s.response of an exec) recorded recording id with digest sha. An id
// claimed by two sessions or with two digests, or one with no digest, is
// refused.
func (f *eventFacts) recorded(id, session, sha string) error {
	if id == "" || sha == "" {
		return fmt.Errorf("session %s: its events record a recording without an id or a digest", session)
	}
	if prev, ok := f.recSession[id]; ok && (prev != session || f.recordings[id] != sha) {
		return fmt.Errorf("recording %s is claimed twice, by sessions %s and %s, or with two digests", id, prev, session)
	}
	if _, ok := f.recSession[id]; !ok {
		f.perSession[session]++
	}
	f.recordings[id], f.recSession[id] = sha, session
	return nil
}

func newEventFacts(grantID, requestID string) *eventFacts {
	return &eventFacts{grantID: grantID, requestID: requestID, retracted: map[int64]bool{}, recordings: map[string]string{}, recSession: map[string]string{}, perSession: map[string]int{}, sessIdx: map[string]int{}}
}

func (f *eventFacts) add(e *airlock.Event) error {
	switch {
	case e.GrantID == f.grantID:
	case e.GrantID == "" && f.requestID != "" && e.RequestID == f.requestID:
	default:
		return fmt.Errorf("event %d (%s) belongs to grant %q / request %q, not to this pack's", e.Seq, e.Action, e.GrantID, e.RequestID)
	}
	if seq, is := audit.RetractedSeq(e); is && seq > 0 {
		f.retracted[seq] = true
	}
	f.events = append(f.events, *e)
	return nil
}

// check fills sum from the events that stand (not retracted) and checks
// the JSON views against them.
func (f *eventFacts) check(g *airlock.Grant, rq *airlock.AccessRequest, sum *Summary) error {
	var activated bool
	var activatedReq string    // the request the proved activation names
	provedVersion := int64(-1) // request.created's policy_version; events written before it was recorded have none
	sessIdx := f.sessIdx
	// The exec/attach requests with a terminal not yet matched by their
	// k8s.response (the same session and n).
	terminals := map[terminalKey]bool{}
	session := func(id string) *SessionSummary {
		i, ok := sessIdx[id]
		if !ok {
			i = len(sum.Sessions)
			sessIdx[id] = i
			sum.Sessions = append(sum.Sessions, SessionSummary{ID: id})
		}
		return &sum.Sessions[i]
	}
	for i := range f.events {
		e := &f.events[i]
		if _, is := audit.RetractedSeq(e); is || f.retracted[e.Seq] {
			continue // a retraction, or what one retracts: neither stands
		}
		var d map[string]any
		_ = json.Unmarshal(e.Details, &d)
		str := func(k string) string { s, _ := d[k].(string); return s }
		when := func(k string) time.Time { t, _ := time.Parse(time.RFC3339Nano, str(k)); return t }
		switch e.Action {
		case "request.created":
			sum.Reason, sum.Ticket, sum.Rule = str("reason"), str("ticket"), str("rule")
			if v, ok := d["policy_version"].(float64); ok {
				provedVersion = int64(v)
			}
		case "request.reviewed":
			sum.Reviews = append(sum.Reviews, ReviewSummary{By: e.Actor.Name, Decision: str("decision"), Factor: str("mfa_method"), At: e.Time})
		case "grant.activated", "breakglass.activated":
			activated = true
			activatedReq = e.RequestID
			sum.User, sum.Resource, sum.Access = str("user"), e.Resource, str("access")
			sum.StartsAt, sum.EndsAt = when("starts_at"), when("ends_at")
			sum.BreakGlass = e.Action == "breakglass.activated"
		case "breakglass.acknowledged":
			sum.Acknowledged = e.Actor.Name
		case "grant.expired":
			sum.End = "expired at " + e.Time.UTC().Format(time.RFC3339)
		case "grant.revoked":
			sum.End = fmt.Sprintf("revoked by %s at %s: %s", e.Actor.Name, e.Time.UTC().Format(time.RFC3339), str("reason"))
		case "session.started":
			s := session(e.SessionID)
			s.Started = e.Time
		case "session.ended":
			s := session(e.SessionID)
			s.Ended, s.EndReason = e.Time, str("end_reason")
			if s.EndReason == "" {
				s.EndReason = str("reason")
			}
			if h := str("recording_sha256"); h != "" {
				if err := f.recorded(e.SessionID, e.SessionID, h); err != nil {
					return err
				}
			}
			var parts struct {
				Recordings []airlock.SessionRecording `json:"recordings"`
			}
			_ = json.Unmarshal(e.Details, &parts)
			for _, r := range parts.Recordings {
				if !partOf(e.SessionID, r.ID) {
					return fmt.Errorf("session %s: its end records recording %q, not one of its own (%s-N)", e.SessionID, r.ID, e.SessionID)
				}
				if err := f.recorded(r.ID, e.SessionID, r.SHA256); err != nil {
					return err
				}
			}
		case "k8s.response":
			// An exec -it's recording, announced as the exec ended: the
			// only proof of it when the session's node was lost before
			// the session ended (its session.ended, by another node,
			// lists none).
			if n, ok := d["n"].(float64); ok {
				delete(terminals, terminalKey{e.SessionID, n})
			}
			if id := str("recording"); id != "" {
				if !partOf(e.SessionID, id) {
					return fmt.Errorf("session %s: its k8s.response records recording %q, not one of its own (%s-N)", e.SessionID, id, e.SessionID)
				}
				if err := f.recorded(id, e.SessionID, str("recording_sha256")); err != nil {
					return err
				}
			}
		case "k8s.request":
			session(e.SessionID).Statements++
			sub := str("subresource")
			if tty, _ := d["tty"].(bool); tty && (sub == "exec" || sub == "attach") && e.Outcome == airlock.OutcomeSuccess {
				if n, ok := d["n"].(float64); ok {
					terminals[terminalKey{e.SessionID, n}] = true
				}
			}
		case "db.query", "http.request", "ssh.exec", "ssh.shell", "ssh.subsystem", "ssh.sftp", "ssh.file_transfer", "ssh.port_forward":
			session(e.SessionID).Statements++
		}
	}
	for k := range terminals {
		session(k.session).UnendedTerminals++
	}
	if !activated {
		return errors.New("no proved event activates this grant")
	}
	// The grant is bound to its request by the proved activation, never by
	// grant.json alone: else another request's proved events (its reason,
	// its reviewers) would be taken as this grant's.
	if activatedReq != g.RequestID {
		return fmt.Errorf("grant.json names request %q, its proved activation request %q", g.RequestID, activatedReq)
	}
	if g.RequestID != "" && rq == nil {
		return fmt.Errorf("request.json is empty, and the grant's proved activation names request %q", g.RequestID)
	}
	// The views say what the events say.
	if g.UserName != sum.User || g.Resource != sum.Resource || g.Access != sum.Access || !g.StartsAt.Equal(sum.StartsAt) || !g.EndsAt.Equal(sum.EndsAt) {
		return fmt.Errorf("grant.json (%s %s %s %s–%s) differs from its proved activation (%s %s %s %s–%s)",
			g.UserName, g.Resource, g.Access, g.StartsAt.Format(time.RFC3339), g.EndsAt.Format(time.RFC3339),
			sum.User, sum.Resource, sum.Access, sum.StartsAt.Format(time.RFC3339), sum.EndsAt.Format(time.RFC3339))
	}
	if rq != nil {
		if rq.ID != g.RequestID || rq.Reason != sum.Reason || rq.Ticket != sum.Ticket || rq.Rule != sum.Rule {
			return fmt.Errorf("request.json differs from its proved request.created event")
		}
		if provedVersion >= 0 && rq.PolicyVersion != provedVersion {
			return fmt.Errorf("request.json says policy version %d; its proved request.created says %d", rq.PolicyVersion, provedVersion)
		}
		sum.PolicyVersion = rq.PolicyVersion
	}
	return nil
}

// checkViews reads reviews.json and sessions.json entry by entry — no more
// entries than the proved events account for — and checks each against
// those events.
func (f *eventFacts) checkViews(v *packVerifier, sum *Summary) error {
	type reviewKey struct{ by, decision, factor string }
	proved := make(map[reviewKey]bool, len(sum.Reviews))
	for _, r := range sum.Reviews {
		proved[reviewKey{r.By, r.Decision, r.Factor}] = true
	}
	err := readArray(v, fileReviews, len(sum.Reviews), func(rv *airlock.Review) error {
		if !proved[reviewKey{rv.ReviewerName, rv.Decision, rv.MFAMethod}] {
			return fmt.Errorf("reviews.json: %s's %s (%s) has no proved request.reviewed event", rv.ReviewerName, rv.Decision, rv.MFAMethod)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return readArray(v, fileSessions, len(sum.Sessions), func(s *airlock.Session) error {
		i, ok := f.sessIdx[s.ID]
		if !ok {
			return fmt.Errorf("sessions.json: session %s has no proved event", s.ID)
		}
		sum.Sessions[i].Kind = s.Kind
		if s.RecordingSHA256 != "" && f.recordings[s.ID] != s.RecordingSHA256 {
			return fmt.Errorf("sessions.json: session %s's recording digest is not what its proved end recorded", s.ID)
		}
		for _, r := range s.Recordings {
			if f.recSession[r.ID] != s.ID || f.recordings[r.ID] != r.SHA256 {
				return fmt.Errorf("sessions.json: recording %s of session %s is not what its proved end recorded", r.ID, s.ID)
			}
		}
		return nil
	})
}

// readArray decodes name, a JSON array (or null), one entry at a time into
// fn, refusing more than max entries before it decodes another.
func readArray[T any](v *packVerifier, name string, max int, fn func(*T) error) error {
	return v.stream(name, maxJSONFile, func(r io.Reader) error {
		dec := json.NewDecoder(r)
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		if tok == nil {
			return nil
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return fmt.Errorf("%s: not a JSON array", name)
		}
		for n := 0; dec.More(); n++ {
			if n >= max {
				return fmt.Errorf("%s holds more entries than its proved events account for (%d)", name, max)
			}
			var x T
			if err := dec.Decode(&x); err != nil {
				return fmt.Errorf("%s entry %d: %v", name, n+1, err)
			}
			if err := fn(&x); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		return nil
	})
}

// String is the human summary `airlock evidence verify` prints.
func (s *Summary) String() string {
	var b strings.Builder
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
	fmt.Fprintf(&b, "OK: evidence pack of grant %s verified offline\n", s.GrantID)
	key := "the key you gave"
	if s.EmbeddedKey {
		key = "the key in the pack — compare its ID with `airlock audit pubkey` of the server, or pass --pubkey"
	}
	fmt.Fprintf(&b, "  %d events, each in the audit log of %d events signed at %s by key %s (%s)\n", s.Events, s.TreeSize, ts(s.SignedAt), s.KeyID, key)
	bg := ""
	if s.BreakGlass {
		bg = " (break-glass)"
	}
	fmt.Fprintf(&b, "  who:      %s → %s, access %s%s, %s to %s\n", s.User, s.Resource, s.Access, bg, ts(s.StartsAt), ts(s.EndsAt))
	why := s.Reason
	if s.Ticket != "" {
		why += " (" + s.Ticket + ")"
	}
	fmt.Fprintf(&b, "  why:      %s\n", why)
	fmt.Fprintf(&b, "  policy:   rule %s, version %d\n", s.Rule, s.PolicyVersion)
	if len(s.Reviews) == 0 {
		fmt.Fprintf(&b, "  reviews:  none\n")
	}
	for _, r := range s.Reviews {
		fmt.Fprintf(&b, "  review:   %s by %s with %s at %s\n", r.Decision, r.By, r.Factor, ts(r.At))
	}
	if s.BreakGlass {
		ack := "NOT acknowledged"
		if s.Acknowledged != "" {
			ack = "acknowledged by " + s.Acknowledged
		}
		fmt.Fprintf(&b, "  break-glass: %s\n", ack)
	}
	for _, ss := range s.Sessions {
		rec := ""
		switch {
		case ss.Recording && ss.Recordings > 1:
			rec = fmt.Sprintf(", %d recordings verified", ss.Recordings)
		case ss.Recording:
			rec = ", recording verified"
		case ss.UnendedTerminals > 0:
			rec = fmt.Sprintf(", %d recordings verified, %d exec/attach terminal(s) with no recorded end (running when the pack was made, or cut off with their server): not in the pack", ss.Recordings, ss.UnendedTerminals)
		}
		fmt.Fprintf(&b, "  session:  %s %s, %s to %s (%s), %d statements/requests%s\n", ss.ID, ss.Kind, ts(ss.Started), ts(ss.Ended), ss.EndReason, ss.Statements, rec)
	}
	end := s.End
	if end == "" {
		end = "active when the pack was made"
	}
	fmt.Fprintf(&b, "  end:      %s\n", end)
	return b.String()
}
