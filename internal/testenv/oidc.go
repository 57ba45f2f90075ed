package testenv

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OIDCProvider is a real OpenID provider for tests (zitadel/oidc's op package with its
// in-memory example storage) serving discovery, JWKS, authorize and token
// endpoints over HTTP. A test picks which user "types their password",
// which amr/acr the ID token carries, and the IdP groups; tamper makes the
// token endpoint misbehave ("aud": re-signed for another audience,
// "badsig": signed by a key not in the JWKS).
type OIDCProvider struct {
	*storage.Storage
	URL, ClientID, Secret string

	mu     sync.Mutex
	login  string
	amr    []string
	acr    string
	Groups map[string][]string
	tamper string
}

type idpUsers map[string]*storage.User

func (u idpUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u idpUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u idpUsers) ExampleClientID() string { return "service" }

// amrRequest overrides how the user authenticated at the IdP.
type amrRequest struct {
	op.AuthRequest
	amr []string
	acr string
}

func (r *amrRequest) GetAMR() []string { return r.amr }
func (r *amrRequest) GetACR() string   { return r.acr }

func (p *OIDCProvider) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := p.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &amrRequest{AuthRequest: r, amr: p.amr, acr: p.acr}, nil
}

func (p *OIDCProvider) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	if a, ok := req.(*amrRequest); ok {
		req = a.AuthRequest
	}
	return p.Storage.CreateAccessToken(ctx, req)
}

// SetUserinfoFromRequest adds the groups claim to ID tokens.
func (p *OIDCProvider) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := p.Storage.SetUserinfoFromRequest(ctx, ui, token, scopes); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if g, ok := p.Groups[token.GetSubject()]; ok {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (p *OIDCProvider) Set(login string, amr []string, acr, tamper string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.login, p.amr, p.acr, p.tamper = login, amr, acr, tamper
}

var idpSeq struct {
	sync.Mutex
	n int
}

// StartOIDC runs a provider whose client redirects to redirectURL.
func StartOIDC(t testing.TB, redirectURL string) *OIDCProvider {
	t.Helper()
	idpSeq.Lock()
	idpSeq.n++
	clientID := "airlock-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + string(rune('a'+idpSeq.n%26))
	idpSeq.Unlock()
	users := idpUsers{
		"sub-alice": {ID: "sub-alice", Username: "alice", Password: "idp-pw", Email: "alice@example.com", EmailVerified: true},
		"sub-bob":   {ID: "sub-bob", Username: "Bob Smith", Password: "idp-pw", Email: "Bob.Smith@example.com", EmailVerified: true},
	}
	p := &OIDCProvider{Storage: storage.NewStorage(users), ClientID: clientID, Secret: "client-secret-" + clientID,
		Groups: map[string][]string{}}
	storage.RegisterClients(storage.WebClient(clientID, p.Secret, redirectURL))
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	key := sha256.Sum256([]byte("test crypto key"))
	//lint:ignore SA1019 the example storage this test uses is built for NewOpenIDProvider
	prov, err := op.NewOpenIDProvider(srv.URL, &op.Config{CryptoKey: key, CodeMethodS256: true}, p, op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	// The login UI: the user "types" their IdP password.
	mux.HandleFunc("/login/username", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		p.mu.Lock()
		login := p.login
		p.mu.Unlock()
		if err := p.CheckUsernamePassword(login, "idp-pw", id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, srv.URL+"/authorize/callback?id="+url.QueryEscape(id), http.StatusFound)
	})
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		tamper := p.tamper
		p.mu.Unlock()
		if tamper == "" {
			prov.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		prov.ServeHTTP(rec, r)
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		if raw, ok := body["id_token"].(string); ok {
			body["id_token"] = p.retamper(t, raw, tamper)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		json.NewEncoder(w).Encode(body)
	})
	mux.Handle("/", prov)
	h = mux
	return p
}

// retamper re-signs an ID token: for another audience with the IdP's own
// key ("aud"), or unchanged with a key the JWKS does not hold ("badsig").
func (p *OIDCProvider) retamper(t testing.TB, raw, mode string) string {
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sk, _ := p.Storage.SigningKey(context.Background())
	key := sk.Key().(*rsa.PrivateKey)
	switch mode {
	case "aud":
		var c map[string]any
		json.Unmarshal(payload, &c)
		c["aud"] = []string{"someone-else"}
		payload, _ = json.Marshal(c)
	case "badsig":
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = other
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	h := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}
