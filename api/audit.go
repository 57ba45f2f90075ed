package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/identity"
)

// EvidencePack is a prepared evidence pack (evidence.Pack).
type EvidencePack interface {
	WriteTo(ctx context.Context, w io.Writer) error
}

// AuditDeps are the audit operations the API exposes.
type AuditDeps struct {
	Store airlock.AuditStore
	Log   airlock.Auditor
	// Export streams the log as JSON Lines.
	Export func(ctx context.Context, w io.Writer, f airlock.EventFilter) error
	// Verify checks the stored chain and checkpoints.
	Verify func(ctx context.Context) (any, error)
	// PublicKey is the checkpoint key in PEM, for offline verification.
	PublicKey []byte
	// Evidence prepares the evidence pack of a grant (nil: no evidence
	// packs): everything read and proved, so that an error comes before
	// the export is audited and before a byte is written.
	Evidence func(ctx context.Context, grantID string) (EvidencePack, error)
}

func parseFilter(r *http.Request) (airlock.EventFilter, error) {
	q := r.URL.Query()
	f := airlock.EventFilter{Action: q.Get("action"), ActorName: q.Get("user"), Resource: q.Get("resource"),
		SessionID: q.Get("session"), GrantID: q.Get("grant")}
	var err error
	if v := q.Get("after"); v != "" {
		if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil {
			return f, airlock.Errorf(airlock.EINVALID, "after must be a sequence number")
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 0 {
			return f, airlock.Errorf(airlock.EINVALID, "limit must be a non-negative integer")
		}
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, airlock.Errorf(airlock.EINVALID, "%s must be an RFC 3339 time like 2026-11-27T10:00:00Z", name)
			}
			*dst = t
		}
	}
	f.Desc = q.Has("desc")
	return f, nil
}

func (s *Server) routesAudit() {
	m := s.mux
	ad := s.Audit
	readEvent := func(r *http.Request, p *identity.Principal, what string, f airlock.EventFilter, follow bool) error {
		// Every read of the log is itself audited, with what it selected;
		// a following read once, when it starts.
		_, err := ad.Log.Record(r.Context(), airlock.Event{Actor: p.Actor(), Action: "audit." + what, SourceAddr: p.Source, Outcome: airlock.OutcomeSuccess,
			Details: readDetails(f, follow)})
		if err != nil {
			return airlock.WrapError(airlock.EUNAVAILABLE, "the audit log cannot be written; the read was refused", err)
		}
		return nil
	}
	m.HandleFunc("GET "+RouteAuditEvents, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.RequireAuditReader(p); err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := parseFilter(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if f.Limit == 0 || f.Limit > 10000 {
			f.Limit = 1000
		}
		follow := r.URL.Query().Has("follow")
		if follow {
			release, err := s.openFollow(p)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			defer release()
		}
		if err := readEvent(r, p, "read", f, follow); err != nil {
			s.writeError(w, r, err)
			return
		}
		if follow {
			s.followEvents(w, r, f)
			return
		}
		evs, err := ad.Store.ListEvents(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if evs == nil {
			evs = []airlock.Event{}
		}
		writeJSON(w, http.StatusOK, evs)
	}))
	m.HandleFunc("GET "+RouteAuditExport, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.RequireAuditReader(p); err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := parseFilter(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := readEvent(r, p, "exported", f, false); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/jsonl")
		if err := ad.Export(r.Context(), w, f); err != nil {
			s.Logger.Error("audit export", "err", err)
		}
	}))
	m.HandleFunc("GET "+RouteAuditVerify, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.RequireAuditReader(p); err != nil {
			s.writeError(w, r, err)
			return
		}
		rep, err := ad.Verify(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	}))
	m.HandleFunc("GET "+RouteAuditProof, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.RequireAuditReader(p); err != nil {
			s.writeError(w, r, err)
			return
		}
		q := r.URL.Query()
		num := func(name string) (int64, error) {
			n, err := strconv.ParseInt(q.Get(name), 10, 64)
			if err != nil || n < 1 {
				return 0, airlock.Errorf(airlock.EINVALID, "%s must be a sequence number (1 or more)", name)
			}
			return n, nil
		}
		var details json.RawMessage
		var prove func() (*audit.Proof, error)
		if q.Has("seq") {
			seq, err := num("seq")
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			details = airlock.EventDetails("seq", seq)
			prove = func() (*audit.Proof, error) { return audit.Prove(r.Context(), ad.Store, seq) }
		} else {
			old, err := num("old")
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			nw, err := num("new")
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			details = airlock.EventDetails("old", old, "new", nw)
			prove = func() (*audit.Proof, error) { return audit.ProveConsistency(r.Context(), ad.Store, old, nw) }
		}
		// A proof carries an event: it is a read of the log, audited
		// before anything of it leaves the server — once it exists, so
		// that audit.proved never claims a proof that failed (no such
		// event, bad sizes).
		pr, err := prove()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if _, err := ad.Log.Record(r.Context(), airlock.Event{Actor: p.Actor(), Action: "audit.proved", SourceAddr: p.Source,
			Outcome: airlock.OutcomeSuccess, Details: details}); err != nil {
			s.writeError(w, r, airlock.WrapError(airlock.EUNAVAILABLE, "the audit log cannot be written; the read was refused", err))
			return
		}
		writeJSON(w, http.StatusOK, pr)
	}))
	m.HandleFunc("GET "+RouteAuditPubkey, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(ad.PublicKey)
	})
}

// readDetails are an audit read's details: the filter's set fields, and
// whether the read follows the log.
func readDetails(f airlock.EventFilter, follow bool) json.RawMessage {
	m := map[string]any{}
	for k, v := range map[string]string{"action": f.Action, "user": f.ActorName, "resource": f.Resource, "session": f.SessionID, "grant": f.GrantID} {
		if v != "" {
			m[k] = v
		}
	}
	if f.AfterSeq > 0 {
		m["after"] = f.AfterSeq
	}
	if !f.Since.IsZero() {
		m["since"] = f.Since.UTC()
	}
	if !f.Until.IsZero() {
		m["until"] = f.Until.UTC()
	}
	if f.Limit > 0 && !follow {
		m["limit"] = f.Limit
	}
	d := map[string]any{"filter": m}
	if follow {
		d["follow"] = true
	}
	b, _ := json.Marshal(d)
	return b
}

// FollowPollInterval is how often a following audit read looks for new
// events.
const FollowPollInterval = 500 * time.Millisecond

// MaxFollowsPerUser bounds the following audit reads one user may hold
// open at once (each polls the store every FollowPollInterval), and
// FollowWriteTimeout how long one write to a following client may take: a
// client that stops reading does not hold its stream, and its events, for
// ever.
const (
	MaxFollowsPerUser  = 4
	FollowWriteTimeout = 30 * time.Second
)

// openFollow counts a following read of p's against MaxFollowsPerUser;
// release gives it back.
func (s *Server) openFollow(p *identity.Principal) (release func(), err error) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.follows == nil {
		s.follows = map[string]int{}
	}
	id := p.User.ID
	if s.follows[id] >= MaxFollowsPerUser {
		return nil, &airlock.Error{Code: airlock.ELOCKED, Message: fmt.Sprintf("you already follow the audit log in %d streams; close one (`airlock audit tail -f`) and retry", MaxFollowsPerUser),
			Details: map[string]any{"retry_after_seconds": 1}}
	}
	s.follows[id]++
	return func() {
		s.stopMu.Lock()
		defer s.stopMu.Unlock()
		if s.follows[id]--; s.follows[id] <= 0 {
			delete(s.follows, id)
		}
	}, nil
}

// followEvents streams the events matching f with seq > f.AfterSeq as
// JSON Lines, oldest first, and keeps streaming new ones until the client
// goes away, the server shuts down, or the caller's login session stops
// being valid or allowed to read the log (checked before every read after
// the first, without counting as activity: see identity.Service.Recheck).
func (s *Server) followEvents(w http.ResponseWriter, r *http.Request, f airlock.EventFilter) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	f.Desc, f.Limit = false, 1000
	enc := json.NewEncoder(w)
	t := time.NewTicker(FollowPollInterval)
	defer t.Stop()
	for {
		evs, err := s.Audit.Store.ListEvents(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				s.Logger.Error("audit follow", "err", err)
			}
			return
		}
		if len(evs) > 0 {
			rc.SetWriteDeadline(time.Now().Add(FollowWriteTimeout))
		}
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return
			}
			f.AfterSeq = max(f.AfterSeq, e.Seq)
		}
		if len(evs) > 0 && rc.Flush() != nil {
			return
		}
		if len(evs) < f.Limit { // else more are waiting
			select {
			case <-ctx.Done():
				return
			case <-s.streamsDone():
				return
			case <-t.C:
			}
		}
		// Before every read, backlog or not. Recheck, not Authenticate:
		// a stream is no activity of its user and must not keep the
		// session from idling out.
		p, err := s.Identity.Recheck(ctx, bearer(r), sourceAddr(r))
		if err != nil || s.Identity.RequireAuditReader(p) != nil {
			return
		}
	}
}
