package httpgw

import (
	"net"
	"net/http"
	"net/http/httputil"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/recording"
	"github.com/airlockhq/airlock/secrets"
)

// A Door is what one kind of gateway built on this core decides for
// itself: which app a request is for, where its token is, whether the
// access level may send it and what its audit event says, and how the
// upstream request and response differ from a plain proxy's. The core
// owns everything else — sessions and their ends, revalidation,
// concurrency and idle bounds, the audit pipeline (the request event
// enters it before the request is forwarded; durable first under strict
// audit), cancelling requests and closing upgraded streams when a session
// ends, and the gateway contract.
//
// The apps door (Config.Door nil) serves web apps at their own hosts with
// the browser sign-in; package kubegw is the Kubernetes API door.
type Door interface {
	// Kind is the resource kind this door serves (airlock.KindHTTP,
	// airlock.KindKubernetes); it names sessions and logs.
	Kind() string
	// Actions are the audit actions of a request and of its response
	// ("http.request", "http.response").
	Actions() (request, response string)
	// Route returns the app r is for. It may rewrite r.URL.Path to the
	// path inside the app. It answers requests it does not route itself
	// (an unknown host, the door's own paths, a malformed request) and
	// returns nil for them.
	Route(w http.ResponseWriter, r *http.Request) *App
	// Token returns the Airlock token r carries (zero when none), and
	// whether it came in a browser's app cookie.
	Token(r *http.Request) (tok secrets.Secret, browser bool)
	// Inspect decides a request under t before it is forwarded: the
	// door's own fields for its request event (merged into the core's, a
	// JSON object or nil), and a refusal when it may not be forwarded.
	Inspect(r *http.Request, t *Target) (fields any, refusal *Refusal)
	// Rewrite finishes the upstream request: the core has pointed it at
	// t.Upstream, removed the client's Airlock token, set t.Header and
	// (with Config.Identity) the identity assertion.
	Rewrite(pr *httputil.ProxyRequest, t *Target)
	// ModifyResponse edits the app's response before the client sees it.
	ModifyResponse(resp *http.Response, t *Target) error
	// Unauthenticated answers a request without a usable session; reason
	// is why ("" when it carried no token).
	Unauthenticated(w http.ResponseWriter, r *http.Request, app *App, reason string)
	// Error answers a request the gateway refuses or could not forward.
	Error(w http.ResponseWriter, r *http.Request, status int, msg string)
}

// Refusal is a request a Door will not forward.
type Refusal struct {
	// Status is the HTTP status the client gets (403 unless set).
	Status int
	// Denied is the audit's name for the refusal ("access_level",
	// "namespace").
	Denied string
	// Message is shown to the client.
	Message string
}

// A StreamDoor follows the upgraded streams of its requests (Kubernetes
// exec and attach). Stream may wrap client, the client's side of the
// upgraded connection of request r, to watch what passes; the wrapper
// must relay every byte unchanged and at once.
type StreamDoor interface {
	Stream(r *http.Request, t *Target, client net.Conn, s StreamSession) net.Conn
}

// StreamSession is what a StreamDoor may use of the session a stream runs
// in.
type StreamSession interface {
	// NewRecording starts a terminal recording (asciicast) of one
	// stream, with header h, and returns it with its id (SESSION-N, N
	// counting the session's recordings from 1). The stream closes it as
	// it ends (and names its id and SHA-256 in its response event); the
	// session closes any left open, and lists every one with its SHA-256
	// in session.ended and the session row (Session.Recordings). An error
	// (no Config.Recordings, a store failure, an ended session) means the
	// stream cannot be recorded.
	NewRecording(h recording.Header) (w *recording.Writer, id string, err error)
	// Note adds fields (a JSON object) to the request's response event.
	Note(fields any)
	// ID is the session's id.
	ID() string
	// EndReason is why the session ended ("" while it is live); the
	// session's end closes the stream (the conn Stream returned).
	EndReason() airlock.EndReason
}
