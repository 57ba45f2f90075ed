package assertion

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/airlockhq/airlock"
)

// KeyPrefix is the prefix of the store's KV entries that hold the keys,
// one per key: KeyPrefix + kid.
const KeyPrefix = "assertion/key/"

// Defaults of Options.
const (
	DefaultLifetime    = 2 * time.Minute
	DefaultRotateEvery = 24 * time.Hour
	DefaultReload      = 30 * time.Second
)

const (
	// JWKSMaxAge is how long a client may cache the JWKS (the handler's
	// Cache-Control max-age).
	JWKSMaxAge = 5 * time.Minute
	// JWKSReload bounds how stale the JWKS a replica serves may be: it
	// rereads the store at most this often for it (Sign rereads it at most
	// every Options.Reload).
	JWKSReload = 5 * time.Second
	// Margin is added to the publication of a key both ahead (before it
	// signs) and behind (after its last token expires), for clock skew
	// between the replicas and the apps.
	Margin = 5 * time.Minute
)

// Store is the part of airlock.KVStore that Keys needs. Every replica must
// use the same one.
type Store interface {
	PutKV(ctx context.Context, key string, value []byte, expiresAt time.Time) error
	ScanKV(ctx context.Context, prefix string, now time.Time) (map[string][]byte, error)
}

// Options configures Keys. Issuer is required; zero durations take the
// defaults.
type Options struct {
	// Issuer is the iss claim: the server's public URL.
	Issuer string
	// Lifetime is how long an assertion is valid (DefaultLifetime).
	Lifetime time.Duration
	// RotateEvery is how long each key signs (DefaultRotateEvery). It must
	// be longer than the key's pre-publication (JWKSMaxAge + Reload +
	// Margin).
	RotateEvery time.Duration
	// Reload is how often Sign rereads the key set from the store at most
	// (DefaultReload).
	Reload time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger receives what the JWKS handler cannot tell its client, and
	// keys that cannot be opened (slog.Default()).
	Logger *slog.Logger
}

// Claims is what one assertion says: who, under which grant, for which app.
type Claims struct {
	// Audience is the app: the resource name or its public host, as the
	// app is configured to expect. Required.
	Audience string
	// Subject is the user id. Required.
	Subject string
	// Name is the user name.
	Name string
	// Groups are the user's groups.
	Groups []string
	// Grant is the grant id. Required.
	Grant string
	// Access is the grant's access level. Required.
	Access string
	// EndsAt is the grant's end; exp is never later. Required.
	EndsAt time.Time
}

// Keys signs assertions with the current key of the set held in the store
// and publishes the set as a JWKS. It is safe for concurrent use; create it
// with New.
type Keys struct {
	store        Store
	sealer       airlock.Sealer
	issuer       string
	lifetime     time.Duration
	rotateEvery  time.Duration
	reload       time.Duration
	publishAhead time.Duration
	now          func() time.Time
	log          *slog.Logger

	refresh sync.Mutex // held by the one caller that rereads the store
	st      atomic.Pointer[state]
}

// New returns Keys on store and sealer. It does not touch the store: the
// first Sign or JWKS loads the key set, creating the first key if there is
// none. It returns an EINVALID *airlock.Error for bad options.
func New(store Store, sealer airlock.Sealer, opts Options) (*Keys, error) {
	if store == nil || sealer == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "assertion: a store and a sealer are required")
	}
	if opts.Issuer == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "assertion: an issuer (the server's public URL) is required")
	}
	k := &Keys{
		store: store, sealer: sealer, issuer: opts.Issuer,
		lifetime:    cmp.Or(opts.Lifetime, DefaultLifetime),
		rotateEvery: cmp.Or(opts.RotateEvery, DefaultRotateEvery),
		reload:      cmp.Or(opts.Reload, DefaultReload),
		now:         opts.Now,
		log:         opts.Logger,
	}
	if k.lifetime < 0 || k.rotateEvery < 0 || k.reload < 0 {
		return nil, airlock.Errorf(airlock.EINVALID, "assertion: durations must be positive")
	}
	k.publishAhead = JWKSMaxAge + k.reload + Margin
	if k.rotateEvery <= k.publishAhead {
		return nil, airlock.Errorf(airlock.EINVALID,
			"assertion: rotate_every (%v) must be longer than a key's pre-publication (%v)", k.rotateEvery, k.publishAhead)
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	return k, nil
}

// PublishAhead is how long before it signs a successor key is stored and
// published: JWKSMaxAge + Options.Reload + Margin.
func (k *Keys) PublishAhead() time.Duration { return k.publishAhead }

// Sign returns a signed assertion of c, valid from now for the configured
// lifetime and never past c.EndsAt. It returns an EINVALID *airlock.Error
// when a required claim is missing or the grant has already ended, and the
// store's error when it has no usable key and cannot load or store one.
func (k *Keys) Sign(ctx context.Context, c Claims) (string, error) {
	now := k.now()
	if c.Audience == "" || c.Subject == "" || c.Grant == "" || c.Access == "" || c.EndsAt.IsZero() {
		return "", airlock.Errorf(airlock.EINVALID, "assertion: audience, subject, grant, access and ends_at are required")
	}
	if !now.Before(c.EndsAt) {
		return "", airlock.Errorf(airlock.EINVALID, "assertion: the grant ended at %s", c.EndsAt.UTC().Format(time.RFC3339))
	}
	st, err := k.current(ctx, now, false)
	if err != nil {
		return "", err
	}
	sk := st.signer
	exp := now.Add(k.lifetime)
	// Neither past the grant nor past the key's publication (a replica
	// with a longer Lifetime than the one that stored the key).
	exp = minTime(exp, c.EndsAt, sk.rec.PublishUntil.Add(-Margin))
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("assertion: jti: %w", err)
	}
	groups := c.Groups
	if groups == nil {
		groups = []string{}
	}
	payload, err := json.Marshal(claimSet{
		Issuer: k.issuer, Subject: c.Subject, Audience: c.Audience,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp.Unix(),
		ID:   base64.RawURLEncoding.EncodeToString(jti[:]),
		Name: c.Name, Groups: groups, Grant: c.Grant, Access: c.Access, EndsAt: c.EndsAt.Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("assertion: encode claims: %w", err)
	}
	jws, err := sk.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("assertion: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// claimSet is the JWT payload, marshalled in one pass.
type claimSet struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expiry    int64    `json:"exp"`
	ID        string   `json:"jti"`
	Name      string   `json:"name,omitempty"`
	Groups    []string `json:"groups"`
	Grant     string   `json:"grant"`
	Access    string   `json:"access"`
	EndsAt    int64    `json:"ends_at"`
}

// JWKS returns the published keys as a JSON Web Key Set (RFC 7517), the
// key that signs now first. It holds public keys only.
func (k *Keys) JWKS(ctx context.Context) ([]byte, error) {
	st, err := k.current(ctx, k.now(), true)
	if err != nil {
		return nil, err
	}
	return st.jwks, nil
}

// state is one load of the key set.
type state struct {
	loadedAt time.Time
	// signAgain is when Sign must reload: loadedAt+Reload, the signer's
	// SignUntil, or the time its successor is due, whichever is first.
	signAgain time.Time
	// jwksAgain is when JWKS must reload: signAgain, loadedAt+JWKSReload,
	// or the first end of a publication, whichever is first.
	jwksAgain time.Time
	signer    *signingKey
	jwks      []byte
	etag      string
}

func (s *state) fresh(now time.Time, forJWKS bool) bool {
	if s == nil || now.Before(s.loadedAt) {
		return false
	}
	if forJWKS {
		return now.Before(s.jwksAgain)
	}
	return now.Before(s.signAgain)
}

type signingKey struct {
	rec    record
	signer jose.Signer
}

func (sk *signingKey) signsAt(now time.Time) bool {
	return sk != nil && !now.Before(sk.rec.SignFrom) && now.Before(sk.rec.SignUntil)
}

// current returns a state fresh enough for the caller. One caller at a
// time rereads the store; while it does, Sign callers keep the cached key
// if it still signs, instead of waiting.
func (k *Keys) current(ctx context.Context, now time.Time, forJWKS bool) (*state, error) {
	st := k.st.Load()
	if st.fresh(now, forJWKS) {
		return st, nil
	}
	usable := st != nil && st.signer.signsAt(now)
	if usable && !forJWKS {
		if !k.refresh.TryLock() {
			return st, nil
		}
	} else {
		k.refresh.Lock()
	}
	defer k.refresh.Unlock()
	if cur := k.st.Load(); cur.fresh(now, forJWKS) {
		return cur, nil
	}
	nst, err := k.load(ctx, now)
	if err != nil {
		if usable {
			// Keep signing with the cached key, and retry at the next
			// reload rather than on every call during an outage.
			k.log.Warn("assertion: reload keys", "err", err)
			retry := *st
			retry.loadedAt = now
			retry.signAgain = minTime(now.Add(k.reload), st.signer.rec.SignUntil)
			retry.jwksAgain = minTime(retry.signAgain, now.Add(JWKSReload))
			k.st.Store(&retry)
			return &retry, nil
		}
		return nil, err
	}
	k.st.Store(nst)
	return nst, nil
}

// load reads the key set, stores a first key or a successor when one is
// due, and picks the signing key.
func (k *Keys) load(ctx context.Context, now time.Time) (*state, error) {
	recs, err := k.scan(ctx, now)
	if err != nil {
		return nil, err
	}
	sk := k.pick(recs, now)
	var create bool
	var signFrom time.Time
	switch {
	case sk == nil:
		create, signFrom = true, now
	case !now.Before(sk.rec.SignUntil.Add(-k.publishAhead)) && !hasSuccessor(recs, sk.rec):
		create, signFrom = true, sk.rec.SignUntil
	}
	if create {
		if err := k.create(ctx, now, signFrom); err != nil {
			return nil, err
		}
		// Reread rather than trust our own key: a replica that stored one
		// at the same moment is then seen, and the pick is the same on both.
		if recs, err = k.scan(ctx, now); err != nil {
			return nil, err
		}
		if sk = k.pick(recs, now); sk == nil {
			return nil, fmt.Errorf("assertion: no usable key after storing one")
		}
	}
	st := &state{loadedAt: now, signer: sk}
	st.signAgain = minTime(now.Add(k.reload), sk.rec.SignUntil)
	if !hasSuccessor(recs, sk.rec) {
		if due := sk.rec.SignUntil.Add(-k.publishAhead); due.After(now) {
			st.signAgain = minTime(st.signAgain, due)
		}
	}
	st.jwksAgain = minTime(st.signAgain, now.Add(JWKSReload))
	for _, r := range recs {
		st.jwksAgain = minTime(st.jwksAgain, r.PublishUntil)
	}
	if st.jwks, err = jwksOf(recs, sk.rec.Kid); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(st.jwks)
	st.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return st, nil
}

// hasSuccessor reports whether recs hold a key that signs after cur stops.
func hasSuccessor(recs []record, cur record) bool {
	for _, r := range recs {
		if r.SignUntil.After(cur.SignUntil) {
			return true
		}
	}
	return false
}

// pick returns the newest key that signs at now and can be opened, or nil.
// recs are in newest-first order.
func (k *Keys) pick(recs []record, now time.Time) *signingKey {
	var cached *signingKey
	if prev := k.st.Load(); prev != nil {
		cached = prev.signer
	}
	for _, r := range recs {
		if now.Before(r.SignFrom) || !now.Before(r.SignUntil) {
			continue
		}
		if cached != nil && cached.rec.Kid == r.Kid {
			return &signingKey{rec: r, signer: cached.signer}
		}
		priv, err := k.open(r)
		if err != nil {
			k.log.Error("assertion: cannot open a signing key; skipping it", "kid", r.Kid, "err", err)
			continue
		}
		signer, err := jose.NewSigner(
			jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: r.Kid}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			k.log.Error("assertion: cannot sign with a key; skipping it", "kid", r.Kid, "err", err)
			continue
		}
		return &signingKey{rec: r, signer: signer}
	}
	return nil
}

// record is one key's KV entry.
type record struct {
	Kid          string    `json:"kid"`
	Public       []byte    `json:"public"`
	SealedSeed   []byte    `json:"sealed_seed"`
	CreatedAt    time.Time `json:"created_at"`
	SignFrom     time.Time `json:"sign_from"`
	SignUntil    time.Time `json:"sign_until"`
	PublishUntil time.Time `json:"publish_until"`
}

// scan reads the published keys, newest first: latest SignFrom, then
// latest CreatedAt, then greatest kid. Entries that do not parse are
// logged and left out.
func (k *Keys) scan(ctx context.Context, now time.Time) ([]record, error) {
	kv, err := k.store.ScanKV(ctx, KeyPrefix, now)
	if err != nil {
		return nil, fmt.Errorf("assertion: read keys: %w", err)
	}
	recs := make([]record, 0, len(kv))
	for name, v := range kv {
		var r record
		if err := json.Unmarshal(v, &r); err != nil || KeyPrefix+r.Kid != name || len(r.Public) != ed25519.PublicKeySize {
			k.log.Error("assertion: malformed key entry; skipping it", "key", name, "err", err)
			continue
		}
		if !now.Before(r.PublishUntil) {
			continue
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(b.SignFrom.Compare(a.SignFrom), b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.Kid, a.Kid))
	})
	return recs, nil
}

// open unseals r's private key and checks that it matches r's public key.
func (k *Keys) open(r record) (ed25519.PrivateKey, error) {
	seed, err := k.sealer.Open(r.SealedSeed, []byte(KeyPrefix+r.Kid))
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("sealed seed has %d bytes", len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(r.Public)) {
		return nil, fmt.Errorf("private key does not match the public key")
	}
	return priv, nil
}

// create stores a new key that signs from signFrom for RotateEvery.
func (k *Keys) create(ctx context.Context, now, signFrom time.Time) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("assertion: generate key: %w", err)
	}
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("assertion: key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	name := KeyPrefix + kid
	sealed, err := k.sealer.Seal(priv.Seed(), []byte(name))
	if err != nil {
		return fmt.Errorf("assertion: seal key: %w", err)
	}
	r := record{
		Kid: kid, Public: pub, SealedSeed: sealed,
		CreatedAt: now.UTC(), SignFrom: signFrom.UTC(), SignUntil: signFrom.Add(k.rotateEvery).UTC(),
	}
	r.PublishUntil = r.SignUntil.Add(k.lifetime + Margin)
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("assertion: encode key: %w", err)
	}
	if err := k.store.PutKV(ctx, name, v, r.PublishUntil); err != nil {
		return fmt.Errorf("assertion: store key: %w", err)
	}
	return nil
}

// jwksOf encodes the public keys of recs, the signing key first.
func jwksOf(recs []record, signing string) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(recs))}
	for _, r := range recs {
		if r.Kid == signing {
			set.Keys = append(set.Keys, jwkOf(r))
		}
	}
	for _, r := range recs {
		if r.Kid != signing {
			set.Keys = append(set.Keys, jwkOf(r))
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("assertion: encode jwks: %w", err)
	}
	return b, nil
}

func jwkOf(r record) jose.JSONWebKey {
	return jose.JSONWebKey{Key: ed25519.PublicKey(r.Public), KeyID: r.Kid, Algorithm: string(jose.EdDSA), Use: "sig"}
}

func minTime(t time.Time, more ...time.Time) time.Time {
	for _, m := range more {
		if m.Before(t) {
			t = m
		}
	}
	return t
}
