package mfa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/airlockhq/airlock"
)

// WebAuthn ceremony bounds.
const (
	CeremonyTTL        = 5 * time.Minute
	maxWebAuthnPayload = 64 << 10
	ceremonyKeyPrefix  = "webauthn:"
	ceremonyRegister   = "register"
	ceremonyLogin      = "login"
)

// WebAuthnConfig configures the relying party.
type WebAuthnConfig struct {
	// RPID is the relying party ID: the effective domain of the console,
	// e.g. "airlock.example.com" (credentials are bound to it).
	RPID string
	// RPDisplayName is shown by the browser/authenticator.
	RPDisplayName string
	// RPOrigins are the exact origins the browser may report,
	// e.g. "https://airlock.example.com".
	RPOrigins []string
	// RequireUserVerification demands UV (PIN, biometric) on registration
	// and every login; authenticators that only prove presence are refused.
	RequireUserVerification bool
	// AllowedAAGUIDs, when not empty, lists the authenticator models
	// (AAGUID UUID strings) that may be registered; others are refused,
	// including authenticators reporting the zero AAGUID. Without
	// attestation trust (FIDO MDS) the AAGUID is self-reported: this is a
	// policy guard, not proof of the model.
	AllowedAAGUIDs []string
}

// WebAuthn registers and verifies WebAuthn credentials (passkeys, security
// keys, platform authenticators). Ceremony state lives server-side in the
// KVStore under "webauthn:"+ceremonyID for CeremonyTTL and is deleted when
// the ceremony finishes, so each ceremony (and each assertion) is single
// use. A WebAuthn is safe for concurrent use.
type WebAuthn struct {
	cfg     WebAuthnConfig
	wa      *webauthn.WebAuthn
	factors airlock.FactorStore
	kv      airlock.KVStore
	now     func() time.Time
	aaguids [][]byte

	// inflight holds ceremony IDs being finished in this process, so two
	// concurrent finishes of one ceremony cannot both read it before it is
	// deleted (see docs/mfa.md for the cross-process note).
	mu       sync.Mutex
	inflight map[string]bool
}

// NewWebAuthn validates cfg and returns a WebAuthn. now nil means time.Now.
// Errors: EINVALID for a bad configuration.
func NewWebAuthn(cfg WebAuthnConfig, factors airlock.FactorStore, kv airlock.KVStore, now func() time.Time) (*WebAuthn, error) {
	if now == nil {
		now = time.Now
	}
	if cfg.RPDisplayName == "" {
		cfg.RPDisplayName = "Airlock"
	}
	uv := protocol.VerificationPreferred
	if cfg.RequireUserVerification {
		uv = protocol.VerificationRequired
	}
	conveyance := protocol.PreferNoAttestation
	var aaguids [][]byte
	for _, s := range cfg.AllowedAAGUIDs {
		u, err := uuid.Parse(s)
		if err != nil {
			return nil, airlock.WrapError(airlock.EINVALID, fmt.Sprintf("webauthn: AAGUID %q is not a UUID", s), err)
		}
		aaguids = append(aaguids, u[:])
		// Browsers zero the AAGUID under "none" conveyance; ask for it.
		conveyance = protocol.PreferDirectAttestation
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPDisplayName,
		RPOrigins:             cfg.RPOrigins,
		AttestationPreference: conveyance,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: uv,
		},
	})
	if err != nil {
		return nil, airlock.WrapError(airlock.EINVALID, "webauthn: invalid relying party configuration", err)
	}
	return &WebAuthn{cfg: cfg, wa: wa, factors: factors, kv: kv, now: now, aaguids: aaguids, inflight: map[string]bool{}}, nil
}

// ceremony is the server-side state of one begun ceremony.
type ceremony struct {
	Kind    string               `json:"kind"`
	UserID  string               `json:"user_id"`
	Name    string               `json:"name,omitempty"`
	Session webauthn.SessionData `json:"session"`
}

// waUser adapts an airlock.User and its credentials to webauthn.User.
type waUser struct {
	u     *airlock.User
	creds []webauthn.Credential
	ids   []string // factor ID of creds[i]
}

func (w *waUser) WebAuthnID() []byte                         { return []byte(w.u.ID) }
func (w *waUser) WebAuthnName() string                       { return w.u.Name }
func (w *waUser) WebAuthnDisplayName() string                { return w.u.Name }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

// loadUser returns user with their active WebAuthn credentials; each
// credential's sign count is the factor's Counter (the authoritative one).
func (w *WebAuthn) loadUser(ctx context.Context, user *airlock.User) (*waUser, error) {
	fs, err := w.factors.ListFactors(ctx, user.ID)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	wu := &waUser{u: user}
	for _, f := range fs {
		if f.Kind != airlock.FactorWebAuthn || f.Status != airlock.FactorActive {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal(f.Data, &c); err != nil {
			return nil, fmt.Errorf("webauthn: factor %s has unreadable data: %w", f.ID, err)
		}
		c.Authenticator.SignCount = uint32(f.Counter)
		c.Authenticator.CloneWarning = false
		wu.creds = append(wu.creds, c)
		wu.ids = append(wu.ids, f.ID)
	}
	return wu, nil
}

func (w *WebAuthn) saveCeremony(ctx context.Context, c *ceremony) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("webauthn: %w", err)
	}
	id := airlock.NewID("wc")
	if err := w.kv.PutKV(ctx, ceremonyKeyPrefix+id, b, w.now().Add(CeremonyTTL)); err != nil {
		return "", fmt.Errorf("webauthn: store ceremony: %w", err)
	}
	return id, nil
}

// takeCeremony loads and deletes ceremony id; it must be of kind for user.
// The returned release func must be called when the finish is done.
func (w *WebAuthn) takeCeremony(ctx context.Context, id, kind, userID string) (*ceremony, func(), error) {
	refused := airlock.WrapError(airlock.EINVALID, "WebAuthn ceremony expired or already used; start again", ErrCeremony)
	w.mu.Lock()
	if w.inflight[id] {
		w.mu.Unlock()
		return nil, nil, refused
	}
	w.inflight[id] = true
	w.mu.Unlock()
	release := func() { w.mu.Lock(); delete(w.inflight, id); w.mu.Unlock() }

	// Single use, across replicas too: taken before verifying, whatever
	// the outcome.
	b, err := w.kv.TakeKV(ctx, ceremonyKeyPrefix+id, w.now())
	if err != nil {
		release()
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, nil, refused
		}
		return nil, nil, fmt.Errorf("webauthn: load ceremony: %w", err)
	}
	var c ceremony
	if err := json.Unmarshal(b, &c); err != nil || c.Kind != kind || c.UserID != userID {
		release()
		return nil, nil, refused
	}
	return &c, release, nil
}

// BeginRegistration starts registering a new credential named name for
// user. It returns the ceremony ID and the JSON the browser passes to
// navigator.credentials.create ({"publicKey": PublicKeyCredentialCreationOptions}
// with base64url binary fields, as parsed by
// PublicKeyCredential.parseCreationOptionsFromJSON). The user's existing
// credentials are excluded. Errors: EINVALID for a bad name; store errors.
func (w *WebAuthn) BeginRegistration(ctx context.Context, user *airlock.User, name string) (ceremonyID string, options []byte, err error) {
	if name == "" {
		name = "security key"
	}
	if err := checkFactorName(name); err != nil {
		return "", nil, err
	}
	wu, err := w.loadUser(ctx, user)
	if err != nil {
		return "", nil, err
	}
	var excl []protocol.CredentialDescriptor
	for _, c := range wu.creds {
		excl = append(excl, c.Descriptor())
	}
	creation, session, err := w.wa.BeginRegistration(wu, webauthn.WithExclusions(excl))
	if err != nil {
		return "", nil, fmt.Errorf("webauthn: begin registration: %w", err)
	}
	options, err = json.Marshal(creation)
	if err != nil {
		return "", nil, fmt.Errorf("webauthn: %w", err)
	}
	id, err := w.saveCeremony(ctx, &ceremony{Kind: ceremonyRegister, UserID: user.ID, Name: name, Session: *session})
	if err != nil {
		return "", nil, err
	}
	return id, options, nil
}

// FinishRegistration verifies the browser's credential JSON for ceremony
// ceremonyID, enforces user verification (if configured) and the AAGUID
// allowlist, and stores the credential as an active factor (Data: the
// webauthn.Credential JSON; Counter: its sign count).
// Errors: EINVALID (ceremony unknown/expired/used, wrapping ErrCeremony;
// malformed or unverifiable response, wrapping ErrAssertion; credential
// already registered); EFORBIDDEN wrapping ErrPolicy for an authenticator
// refused by policy; ETOOLARGE; store errors.
func (w *WebAuthn) FinishRegistration(ctx context.Context, user *airlock.User, ceremonyID string, response []byte) (*airlock.Factor, error) {
	if len(response) > maxWebAuthnPayload {
		return nil, airlock.Errorf(airlock.ETOOLARGE, "WebAuthn response too large")
	}
	c, release, err := w.takeCeremony(ctx, ceremonyID, ceremonyRegister, user.ID)
	if err != nil {
		return nil, err
	}
	defer release()
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, airlock.WrapError(airlock.EINVALID, "WebAuthn registration response is malformed", fmt.Errorf("%w: %w", ErrAssertion, err))
	}
	// Checked before verification only to give a precise message; the
	// library verifies the UV flag again against the signed data.
	if w.cfg.RequireUserVerification && !parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified() {
		return nil, airlock.WrapError(airlock.EFORBIDDEN, "this authenticator did not verify the user (PIN or biometric required)", ErrPolicy)
	}
	wu, err := w.loadUser(ctx, user)
	if err != nil {
		return nil, err
	}
	cred, err := w.wa.CreateCredential(wu, c.Session, parsed)
	if err != nil {
		return nil, airlock.WrapError(airlock.EINVALID, "WebAuthn registration could not be verified", fmt.Errorf("%w: %w", ErrAssertion, err))
	}
	if len(w.aaguids) > 0 && !slices.ContainsFunc(w.aaguids, func(a []byte) bool { return bytes.Equal(a, cred.Authenticator.AAGUID) }) {
		return nil, airlock.WrapError(airlock.EFORBIDDEN, "this authenticator model is not allowed here", ErrPolicy)
	}
	for _, have := range wu.creds {
		if bytes.Equal(have.ID, cred.ID) {
			return nil, airlock.Errorf(airlock.ECONFLICT, "this credential is already registered")
		}
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	f := &airlock.Factor{
		ID:        airlock.NewID("fa"),
		UserID:    user.ID,
		Kind:      airlock.FactorWebAuthn,
		Name:      c.Name,
		Status:    airlock.FactorActive,
		Data:      data,
		Counter:   int64(cred.Authenticator.SignCount),
		CreatedAt: w.now().UTC(),
	}
	if err := w.factors.CreateFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	if f.Counter > 0 {
		// CreateFactor may not persist Counter; make the store agree.
		if _, err := w.factors.AdvanceFactorCounter(ctx, f.ID, f.Counter, f.CreatedAt); err != nil {
			return nil, fmt.Errorf("webauthn: %w", err)
		}
	}
	return f, nil
}

// BeginLogin starts an assertion for user against their active WebAuthn
// credentials and returns the ceremony ID and the JSON the browser passes to
// navigator.credentials.get ({"publicKey": PublicKeyCredentialRequestOptions}).
// Errors: EUNAUTHORIZED wrapping ErrNoFactor if user has no credential;
// store errors.
func (w *WebAuthn) BeginLogin(ctx context.Context, user *airlock.User) (ceremonyID string, options []byte, err error) {
	wu, err := w.loadUser(ctx, user)
	if err != nil {
		return "", nil, err
	}
	if len(wu.creds) == 0 {
		return "", nil, airlock.WrapError(airlock.EUNAUTHORIZED, "no security key or passkey registered", ErrNoFactor)
	}
	uv := protocol.VerificationPreferred
	if w.cfg.RequireUserVerification {
		uv = protocol.VerificationRequired
	}
	assertion, session, err := w.wa.BeginLogin(wu, webauthn.WithUserVerification(uv))
	if err != nil {
		return "", nil, fmt.Errorf("webauthn: begin login: %w", err)
	}
	options, err = json.Marshal(assertion)
	if err != nil {
		return "", nil, fmt.Errorf("webauthn: %w", err)
	}
	id, err := w.saveCeremony(ctx, &ceremony{Kind: ceremonyLogin, UserID: user.ID, Session: *session})
	if err != nil {
		return "", nil, err
	}
	return id, options, nil
}

// MsgWebAuthnFailed is the user-facing message of every refused assertion.
const MsgWebAuthnFailed = "security key verification failed"

// FinishLogin verifies the browser's assertion JSON for ceremony ceremonyID
// and returns the ID of the factor that signed it. The ceremony is consumed
// whatever the outcome, so a replayed assertion is refused. A sign count
// that does not increase (when either the stored or the new count is
// non-zero) is refused with ErrClonedAuthenticator (audit as
// mfa.cloned_key).
// With ErrClonedAuthenticator (only), factorID names the factor whose
// count regressed, for the audit; on every other error it is empty.
// Errors: EUNAUTHORIZED with MsgWebAuthnFailed wrapping ErrCeremony,
// ErrAssertion, ErrPolicy or ErrClonedAuthenticator; ETOOLARGE; store errors.
func (w *WebAuthn) FinishLogin(ctx context.Context, user *airlock.User, ceremonyID string, response []byte) (factorID string, err error) {
	fail := func(cause error) (string, error) {
		return "", airlock.WrapError(airlock.EUNAUTHORIZED, MsgWebAuthnFailed, cause)
	}
	if len(response) > maxWebAuthnPayload {
		return "", airlock.Errorf(airlock.ETOOLARGE, "WebAuthn response too large")
	}
	c, release, err := w.takeCeremony(ctx, ceremonyID, ceremonyLogin, user.ID)
	if err != nil {
		if airlock.IsCode(err, airlock.EINVALID) {
			return fail(ErrCeremony)
		}
		return "", err
	}
	defer release()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrAssertion, err))
	}
	wu, err := w.loadUser(ctx, user)
	if err != nil {
		return "", err
	}
	cred, err := w.wa.ValidateLogin(wu, c.Session, parsed)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrAssertion, err))
	}
	if w.cfg.RequireUserVerification && !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return fail(ErrPolicy)
	}
	i := slices.IndexFunc(wu.creds, func(x webauthn.Credential) bool { return bytes.Equal(x.ID, cred.ID) })
	if i < 0 {
		return fail(ErrAssertion)
	}
	id := wu.ids[i]
	stored := int64(wu.creds[i].Authenticator.SignCount)
	got := int64(parsed.Response.AuthenticatorData.Counter)
	now := w.now().UTC()
	if got == 0 && stored == 0 {
		// Authenticator without a counter (many passkeys): nothing to
		// advance; the single-use ceremony is the replay guard.
		f, err := w.factors.FactorByID(ctx, id)
		if err != nil {
			return "", fmt.Errorf("webauthn: %w", err)
		}
		f.LastUsedAt = now
		if err := w.factors.UpdateFactor(ctx, f); err != nil {
			return "", fmt.Errorf("webauthn: %w", err)
		}
		return id, nil
	}
	cloned := func() (string, error) {
		_, err := fail(ErrClonedAuthenticator)
		return id, err // the factor is named for the mfa.cloned_key audit
	}
	if cred.Authenticator.CloneWarning || got <= stored {
		return cloned()
	}
	ok, err := w.factors.AdvanceFactorCounter(ctx, id, got, now)
	if err != nil {
		return "", fmt.Errorf("webauthn: %w", err)
	}
	if !ok {
		return cloned()
	}
	return id, nil
}
