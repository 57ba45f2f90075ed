package kubegw

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock/httpgw"
	"github.com/airlockhq/airlock/recording"
)

// channelProtocols are the WebSocket subprotocols of exec and attach the
// gateway lets through: binary channel framing it can follow.
var channelProtocols = []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}

// execUpgrade checks how an exec or attach asks to stream: over WebSocket
// with a channel protocol the gateway can record. SPDY (kubectl before
// 1.30, or KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false) cannot be followed and
// is refused: an exec Airlock cannot record does not run.
func execUpgrade(h http.Header) (protocols []string, why string) {
	if httpgw.UpgradesTo(h, "SPDY") {
		return nil, "exec and attach are recorded, over WebSocket only: use kubectl 1.30 or later (without KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)"
	}
	if !httpgw.UpgradesTo(h, "websocket") {
		return nil, ""
	}
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			for _, ok := range channelProtocols {
				if p == ok {
					protocols = append(protocols, p)
				}
			}
		}
	}
	if len(protocols) == 0 {
		return nil, "exec and attach need a binary channel protocol (" + strings.Join(channelProtocols, ", ") + ")"
	}
	return protocols, ""
}

// Stream follows an exec or attach: with a TTY its terminal goes into a
// recording of its own (output, input and resizes; its id and SHA-256 in
// the k8s.response event, replayable with `airlock sessions play SESSION
// --part N`); either way the exit status goes into the
// k8s.response event; and when the session ends the terminal is told why
// before the stream is closed.
func (door) Stream(r *http.Request, t *httpgw.Target, c net.Conn, ss httpgw.StreamSession) net.Conn {
	req, _ := ParseRequest(r.Method, r.URL.Path, r.URL.Query())
	if req.Subresource != "exec" && req.Subresource != "attach" {
		return c
	}
	q := r.URL.Query()
	e := &execStream{Conn: c, ss: ss, tty: queryBool(q, "tty"),
		title: t.UserName + "@" + t.Resource + " " + req.Subresource + " " + req.Namespace + "/" + req.Name + " " + strings.Join(q["command"], " ")}
	e.in = newFrameReader(e.fromClient)
	e.in.oneFrameMessages = true
	e.out = newFrameReader(e.fromServer)
	return e
}

// queryBool reads a boolean option as the API server does (its
// Convert_Slice_string_To_bool): absent is false, a first value of "0" or
// "false" (any case) is false, and anything else — "TRUE", "yes", "" — is
// true. Reading it any other way would let a terminal run unrecorded.
func queryBool(q url.Values, name string) bool {
	vs, ok := q[name]
	if !ok || len(vs) == 0 {
		return false
	}
	return vs[0] != "0" && !strings.EqualFold(vs[0], "false")
}

// maxStatusBytes bounds the error channel's Status object kept.
const maxStatusBytes = 16 << 10

// execStream relays an exec's client connection unchanged, following its
// frames in both directions.
type execStream struct {
	net.Conn
	ss    httpgw.StreamSession
	tty   bool
	title string

	inMu sync.Mutex   // Read's parsing, against Close reading in.err
	in   *frameReader // what the client sends (Read)
	out  *frameReader // what the cluster sends (Write), after the 101 response

	wmu       sync.Mutex // one Write at a time, and the goodbye at a frame boundary
	outHeader []byte     // the upgrade response, until its end
	headerOK  bool
	closing   bool // the session ended: nothing more goes to the client (wmu)

	mu        sync.Mutex
	rec       *recording.Writer // this exec's own recording (with a TTY)
	recID     string
	recErr    error
	cols      int
	rows      int
	status    []byte
	stdinN    int64
	outN      int64
	closeOnce sync.Once
}

// errUnfollowed ends an exec whose client sends what the gateway cannot
// follow: the cluster could read it as input the recording never saw.
var errUnfollowed = errors.New("kubegw: the client's exec stream is not framing the gateway can follow")

// Read hands on what the client sent once it has been followed (and
// recorded); a chunk that leaves the client's framing unfollowable is
// not handed on, and the stream ends.
func (e *execStream) Read(p []byte) (int, error) {
	n, err := e.Conn.Read(p)
	if n > 0 {
		e.inMu.Lock()
		e.in.feed(p[:n])
		bad := e.in.err != ""
		e.inMu.Unlock()
		if bad {
			return 0, errUnfollowed
		}
	}
	return n, err
}

func (e *execStream) Write(p []byte) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closing {
		// After the goodbye's close frame the client drops whatever
		// comes: relayed, it would be recorded as shown.
		return 0, net.ErrClosed
	}
	n, err := e.Conn.Write(p)
	e.follow(p[:n])
	return n, err
}

// follow parses what was relayed to the client: first the upgrade
// response, then frames.
func (e *execStream) follow(p []byte) {
	if !e.headerOK {
		e.outHeader = append(e.outHeader, p...)
		if len(e.outHeader) >= 5 && string(e.outHeader[:5]) != "HTTP/" {
			// The upgrade response went out through the server's own
			// buffered writer: what comes here is already frames.
			p, e.headerOK, e.outHeader = e.outHeader, true, nil
			e.out.feed(p)
			return
		}
		i := bytes.Index(e.outHeader, []byte("\r\n\r\n"))
		if i < 0 {
			if len(e.outHeader) > 64<<10 {
				e.out.err = "upgrade response too long"
				e.headerOK = true
			}
			return
		}
		rest := e.outHeader[i+4:]
		e.headerOK, e.outHeader = true, nil
		p = rest
	}
	e.out.feed(p)
}

func (e *execStream) fromServer(ch byte, p []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ch {
	case chanStdout, chanStderr:
		e.outN += int64(len(p))
		if e.tty {
			if w := e.recorderLocked(); w != nil {
				w.Output(p)
			}
		}
	case chanError:
		if len(e.status)+len(p) <= maxStatusBytes {
			e.status = append(e.status, p...)
		}
	}
}

func (e *execStream) fromClient(ch byte, p []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ch {
	case chanStdin:
		e.stdinN += int64(len(p))
		if e.tty {
			if w := e.recorderLocked(); w != nil {
				w.Input(p)
			}
		}
	case chanResize:
		var sz struct{ Width, Height int }
		if json.Unmarshal(p, &sz) == nil && sz.Width > 0 && sz.Height > 0 && sz.Width < 10000 && sz.Height < 10000 {
			e.cols, e.rows = sz.Width, sz.Height
			if e.tty {
				if e.rec == nil {
					e.recorderLocked()
				} else {
					e.rec.Resize(sz.Width, sz.Height)
				}
			}
		}
	}
}

// recorderLocked returns the exec's recording, opening it on first use
// with the terminal size known so far (e.mu held).
func (e *execStream) recorderLocked() *recording.Writer {
	if e.rec != nil || e.recErr != nil {
		return e.rec
	}
	cols, rows := e.cols, e.rows
	if cols == 0 {
		cols, rows = 80, 24
	}
	e.rec, e.recID, e.recErr = e.ss.NewRecording(recording.Header{Width: cols, Height: rows, Timestamp: time.Now().Unix(), Title: e.title})
	if e.rec != nil && e.cols != 0 {
		e.rec.Resize(e.cols, e.rows)
	}
	return e.rec
}

// Close tells the terminal why when the session ended under it, notes the
// exec's outcome for its k8s.response event, and closes.
func (e *execStream) Close() error {
	e.closeOnce.Do(func() {
		var told string
		if reason := e.ss.EndReason(); reason != "" {
			if told = e.goodbye("\r\n[airlock] " + reason.Text() + ": this session is closed\r\n"); told == "" {
				e.linger()
			}
		}
		// Each reader's err under the lock its parsing holds, before e.mu
		// (their callbacks take e.mu inside).
		e.inMu.Lock()
		inErr := e.in.err
		e.inMu.Unlock()
		e.wmu.Lock()
		outErr := e.out.err
		e.wmu.Unlock()
		e.mu.Lock()
		f := map[string]any{"stdin_bytes": e.stdinN, "output_bytes": e.outN}
		if code, ok := exitCode(e.status); ok {
			f["exit_code"] = code
		}
		switch {
		case !e.tty:
		case e.rec != nil:
			f["recorded"] = true
			f["recording"] = e.recID
			if err := e.rec.Close(); err != nil {
				f["recording_error"] = "recording incomplete"
			}
			f["recording_sha256"] = e.rec.SHA256()
		case e.recErr != nil:
			f["recording_error"] = "not recorded"
		}
		if inErr != "" || outErr != "" {
			f["stream_unfollowed"] = inErr + outErr
		}
		if told != "" {
			f["goodbye_not_sent"] = told
		}
		e.mu.Unlock()
		e.ss.Note(f)
	})
	return closeBounded(e.Conn, closeTime)
}

// closeTime bounds TLS's close_notify when a stream is closed: a client
// that has stopped reading would hold it for the 5 s crypto/tls allows.
const closeTime = 200 * time.Millisecond

// closeBounded closes c, and the connection under its wrappers (TLS, the
// gateway's counting) if that takes longer than d: the alert's write then
// fails at once.
func closeBounded(c net.Conn, d time.Duration) error {
	raw := c
	for {
		u, ok := raw.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		raw = u.NetConn()
	}
	if raw == c {
		return c.Close()
	}
	t := time.AfterFunc(d, func() { raw.Close() })
	defer t.Stop()
	return c.Close()
}

// closeNormal is a WebSocket close frame with status 1000 (normal
// closure), unmasked from the server side.
var closeNormal = []byte{0x88, 0x02, 0x03, 0xe8}

// goodbyeTime bounds the goodbye's write, and a relay write still blocked
// when the session ends: only a client that has stopped reading fills its
// socket so far that a write waits, and the session's end must not wait
// on it. It is generous because the deadline starts before the write: on
// a loaded machine a goroutine can be held off a core for longer than a
// frame takes to send. With the linger and the bounded close, a cut exec
// is closed within 850 ms.
const goodbyeTime = 400 * time.Millisecond

// goodbye writes msg to the terminal as a stdout message, followed by a
// WebSocket close, when the cluster's side is between frames (never
// inside one). It returns "" once both went out, and otherwise why not
// (for the exec's k8s.response).
func (e *execStream) goodbye(msg string) string {
	// The deadline before the lock: a relay write blocked on a client
	// that has stopped reading holds wmu, and must give it up.
	e.Conn.SetWriteDeadline(time.Now().Add(goodbyeTime))
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.closing = true
	switch {
	case !e.headerOK:
		return "before the upgrade response"
	case e.out.err != "":
		return "the cluster's stream is not followed"
	case e.out.inPayload || e.out.nhdr != 0 || e.out.inMsg:
		return "the cluster's side was inside a message"
	}
	payload := append([]byte{chanStdout}, msg...)
	if len(payload) > 125 {
		return "message too long"
	}
	frames := append([]byte{0x82, byte(len(payload))}, payload...) // FIN, binary; unmasked from the server side
	frames = append(frames, closeNormal...)
	if _, err := e.Conn.Write(frames); err != nil {
		return "write failed" // and the recording does not claim it was shown
	}
	e.mu.Lock()
	if e.tty && e.rec != nil {
		e.rec.Output([]byte(msg))
	}
	e.mu.Unlock()
	return ""
}

// lingerTime bounds how long a closing exec waits for the client to
// close its side after the goodbye.
const lingerTime = 250 * time.Millisecond

// linger reads and drops what the client still sends until it closes its
// side (it answers the WebSocket close and exits) or lingerTime passes.
// Closing a socket that has unread data, or that then receives more,
// makes the kernel reset it, and a reset can throw away the goodbye
// before the client has read it.
func (e *execStream) linger() {
	e.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	b := make([]byte, 512)
	for {
		if _, err := e.Conn.Read(b); err != nil {
			return
		}
	}
}

// exitCode reads the exit status from the error channel's Status: Success
// is 0, NonZeroExitCode carries the code as a cause.
func exitCode(status []byte) (int, bool) {
	if len(status) == 0 {
		return 0, false
	}
	var st struct {
		Status  string
		Reason  string
		Details struct {
			Causes []struct{ Reason, Message string }
		}
	}
	if json.Unmarshal(status, &st) != nil {
		return 0, false
	}
	if st.Status == "Success" {
		return 0, true
	}
	for _, c := range st.Details.Causes {
		if c.Reason == "ExitCode" {
			if n, err := strconv.Atoi(c.Message); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}
