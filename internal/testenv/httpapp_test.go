package testenv

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestHTTPApp(t *testing.T) {
	app := StartHTTPApp(t, HTTPAppOptions{})
	if !strings.HasPrefix(app.URL, "http://127.0.0.1:") || app.URL != "http://"+app.Addr {
		t.Fatalf("URL %q, Addr %q", app.URL, app.Addr)
	}
	c := app.Client()

	do := func(t *testing.T, method, path string, body io.Reader, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, app.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	t.Run("index/absolute-link-from-request-host", func(t *testing.T) {
		resp, body := do(t, "GET", "/", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `href="http://`+app.Addr+`/next"`) ||
			!strings.Contains(body, `method="post" action="/submit"`) {
			t.Fatalf("%d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("index/absolute-link-from-forwarded-host", func(t *testing.T) {
		_, body := do(t, "GET", "/", nil, map[string]string{
			"X-Forwarded-Host": "grafana.apps.example.com, inner", "X-Forwarded-Proto": "https",
		})
		if !strings.Contains(body, `href="https://grafana.apps.example.com/next"`) {
			t.Fatal(body)
		}
	})
	t.Run("submit", func(t *testing.T) {
		resp, body := do(t, "POST", "/submit", strings.NewReader("note=%3Cb%3Ehi"),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != 200 || !strings.Contains(body, `<span id="note">&lt;b&gt;hi</span>`) {
			t.Fatalf("%d\n%s", resp.StatusCode, body)
		}
		if resp, _ := do(t, "GET", "/submit", nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET /submit: %d, want 405", resp.StatusCode)
		}
	})

	t.Run("cookies", func(t *testing.T) {
		resp, _ := do(t, "GET", "/login-cookie", nil, map[string]string{"Host": "grafana.apps.localhost"})
		got := map[string]*http.Cookie{}
		for _, ck := range resp.Cookies() {
			got[ck.Name] = ck
		}
		s, p := got["app_session"], got["app_parent"]
		if s == nil || !s.HttpOnly || s.Path != "/" || s.Domain != "" || s.Value == "" {
			t.Fatalf("app_session: %+v (Set-Cookie %q)", s, resp.Header.Values("Set-Cookie"))
		}
		if p == nil || p.Domain != "apps.localhost" || p.Path != "/" {
			t.Fatalf("app_parent: %+v (Set-Cookie %q)", p, resp.Header.Values("Set-Cookie"))
		}
		// On an IP address there is no parent domain: host-only cookie only.
		resp, _ = do(t, "GET", "/login-cookie", nil, nil)
		if n := len(resp.Cookies()); n != 1 {
			t.Fatalf("on %s: %d cookies, want 1: %q", app.Addr, n, resp.Header.Values("Set-Cookie"))
		}

		_, body := do(t, "GET", "/whoami", nil, map[string]string{"Cookie": "app_session=" + s.Value + "; other=1"})
		var who struct {
			Cookies []struct{ Name, Value string }
		}
		if err := json.Unmarshal([]byte(body), &who); err != nil {
			t.Fatal(err)
		}
		if len(who.Cookies) != 2 || who.Cookies[0].Name != "app_session" || who.Cookies[0].Value != s.Value || who.Cookies[1].Name != "other" {
			t.Fatalf("whoami: %s", body)
		}
	})

	t.Run("redirects", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			hdr  map[string]string
			want string
		}{
			{"/redirect?to=/x", nil, "/x"},
			{"/redirect?to=" + url.QueryEscape("../up?a=1"), nil, "../up?a=1"},
			{"/redirect", nil, "/"},
			{"/redirect-abs", nil, "http://" + app.Addr + "/next"},
			{"/redirect-abs?path=/api/items", map[string]string{"X-Forwarded-Host": "app.apps.localhost", "X-Forwarded-Proto": "https"}, "https://app.apps.localhost/api/items"},
		} {
			resp, _ := do(t, "GET", tc.path, nil, tc.hdr)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tc.want {
				t.Errorf("%s: %d Location %q, want 302 %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.want)
			}
		}
	})

	t.Run("echo", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "PUT", app.URL+"/echo?b=2&a=1", strings.NewReader(strings.Repeat("x", 1234)))
		req.Header.Set("Authorization", "Bearer brokered")
		req.Header.Add("X-Multi", "one")
		req.Header.Add("X-Multi", "two")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Method, Path, Host string
			RawQuery           string `json:"raw_query"`
			Headers            map[string][]string
			BodyLength         int64 `json:"body_length"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		if e.Method != "PUT" || e.Path != "/echo" || e.RawQuery != "b=2&a=1" || e.Host != app.Addr || e.BodyLength != 1234 ||
			e.Headers["Authorization"][0] != "Bearer brokered" || strings.Join(e.Headers["X-Multi"], ",") != "one,two" {
			t.Fatalf("%+v", e)
		}
	})

	t.Run("download/streamed-64MiB", func(t *testing.T) {
		const n = 64 << 20
		rssBefore, _, haveRSS := app.RSS()
		resp, err := c.Get(app.URL + "/download?bytes=" + strconv.Itoa(n) + "&seed=7")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ContentLength != n {
			t.Fatalf("Content-Length %d", resp.ContentLength)
		}
		h := sha256.New()
		got, err := io.Copy(h, resp.Body)
		if err != nil || got != n {
			t.Fatalf("read %d bytes: %v", got, err)
		}
		_, want := do(t, "GET", "/download-sum?bytes="+strconv.Itoa(n)+"&seed=7", nil, nil)
		if sum := hex.EncodeToString(h.Sum(nil)); sum != strings.TrimSpace(want) {
			t.Fatalf("sha256 %s, download-sum %s", sum, want)
		}
		if _, other := do(t, "GET", "/download-sum?bytes="+strconv.Itoa(n)+"&seed=8", nil, nil); other == want {
			t.Fatal("the seed does not change the stream")
		}
		if haveRSS {
			// VmHWM is the process's peak: had the app held the
			// download it would have grown by ≥ 64 MiB.
			_, peak, _ := app.RSS()
			t.Logf("httpapp RSS before %d KiB, peak after %d KiB", rssBefore>>10, peak>>10)
			if peak-rssBefore > 16<<20 {
				t.Errorf("peak RSS grew by %d KiB while streaming %d MiB: the download is buffered", (peak-rssBefore)>>10, n>>20)
			}
		}
	})
	t.Run("download/chunked", func(t *testing.T) {
		resp, body := do(t, "GET", "/download?bytes=100000&chunked=1", nil, nil)
		if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || len(body) != 100000 {
			t.Fatalf("Content-Length %d, Transfer-Encoding %q, %d bytes", resp.ContentLength, resp.TransferEncoding, len(body))
		}
	})

	t.Run("slow/completes", func(t *testing.T) {
		resp, body := do(t, "GET", "/slow?ms=10", nil, nil)
		if resp.StatusCode != 200 || body != "slept 10 ms\n" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("slow/cancellation-counted", func(t *testing.T) {
		before := app.Stats(t).Cancelled
		for _, head := range []string{"0", "1"} {
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, "GET", app.URL+"/slow?ms=60000&head="+head, nil)
			done := make(chan error, 1)
			go func() {
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
			// The request is in flight once the app has counted it.
			app.WaitStats(t, 10*time.Second, func(s HTTPAppStats) bool { return s.Routes["GET /slow"] > 0 })
			time.Sleep(50 * time.Millisecond)
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("head=%s: %v, want context.Canceled", head, err)
			}
		}
		app.WaitStats(t, 5*time.Second, func(s HTTPAppStats) bool { return s.Cancelled == before+2 })
	})

	t.Run("status", func(t *testing.T) {
		if resp, _ := do(t, "GET", "/status/503", nil, nil); resp.StatusCode != 503 {
			t.Fatal(resp.Status)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+app.Addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := ws.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		var ticks int
		var echoed []string
		for ticks < 2 || len(echoed) < 2 {
			typ, msg, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("after %d ticks, echoes %q: %v", ticks, echoed, err)
			}
			switch {
			case typ == websocket.MessageText && strings.HasPrefix(string(msg), "tick "):
				ticks++
			default:
				echoed = append(echoed, typ.String()+":"+hex.EncodeToString(msg))
			}
		}
		if want := "MessageText:" + hex.EncodeToString([]byte("hello")) + " MessageBinary:000102"; strings.Join(echoed, " ") != want {
			t.Fatalf("echoes %q, want %q", echoed, want)
		}
		if s := app.Stats(t); s.WebSocketsOpen != 1 {
			t.Fatalf("websockets_open %d with one open", s.WebSocketsOpen)
		}
		ws.CloseNow() // abrupt, as a gateway cutting the stream would
		app.WaitStats(t, 5*time.Second, func(s HTTPAppStats) bool { return s.WebSocketsOpen == 0 && s.WebSockets == 1 })
	})

	t.Run("sse", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", app.URL+"/sse", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		var data []string
		for len(data) < 3 && sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				data = append(data, d)
			}
		}
		if strings.Join(data, " ") != `{"n":1} {"n":2} {"n":3}` {
			t.Fatalf("events %q: %v", data, sc.Err())
		}
		if s := app.Stats(t); s.SSEOpen != 1 {
			t.Fatalf("sse_open %d with one open", s.SSEOpen)
		}
		cancel()
		app.WaitStats(t, 5*time.Second, func(s HTTPAppStats) bool { return s.SSEOpen == 0 && s.SSE == 1 })
	})

	t.Run("api/items", func(t *testing.T) {
		if _, body := do(t, "GET", "/api/items", nil, nil); strings.TrimSpace(body) != "[]" {
			t.Fatalf("empty list: %s", body)
		}
		resp, body := do(t, "POST", "/api/items", strings.NewReader(`{"name":"disk-full runbook"}`), map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/api/items/1" || !strings.Contains(body, `"name":"disk-full runbook"`) {
			t.Fatalf("create: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if resp, _ := do(t, "POST", "/api/items", strings.NewReader(`{}`), nil); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("create without a name: %d", resp.StatusCode)
		}
		if _, body := do(t, "GET", "/api/items", nil, nil); !strings.Contains(body, `"id":1`) {
			t.Fatalf("list: %s", body)
		}
		if resp, _ := do(t, "GET", "/api/items/1", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("get: %d", resp.StatusCode)
		}
		if resp, _ := do(t, "PUT", "/api/items/1", nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PUT: %d, want 405", resp.StatusCode)
		}
		if resp, _ := do(t, "DELETE", "/api/items/1", nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete: %d", resp.StatusCode)
		}
		if resp, _ := do(t, "GET", "/api/items/1", nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("get deleted: %d", resp.StatusCode)
		}
	})

	t.Run("stats", func(t *testing.T) {
		s := app.Stats(t)
		if s.Routes["PUT /echo"] != 1 || s.Routes["POST /api/items"] != 2 || s.Routes["DELETE /api/items/{id}"] != 1 {
			t.Fatalf("routes %v", s.Routes)
		}
		if again := app.Stats(t); again.Requests != s.Requests {
			t.Fatalf("/stats counted itself: %d then %d", s.Requests, again.Requests)
		}
	})

	t.Run("stop", func(t *testing.T) {
		app.Stop()
		app.Stop()
		if _, err := c.Get(app.URL + "/echo"); err == nil {
			t.Fatal("app still answers after Stop")
		}
	})
}

func TestHTTPAppTLS(t *testing.T) {
	app := StartHTTPApp(t, HTTPAppOptions{TLS: true})
	if app.URL != "https://"+app.Addr || len(app.CAPEM) == 0 {
		t.Fatalf("URL %q, %d bytes of CA", app.URL, len(app.CAPEM))
	}
	resp, err := app.Client().Get(app.URL + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Proto string
		TLS   bool
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if !e.TLS || e.Proto != "HTTP/2.0" {
		t.Fatalf("%+v, want TLS over HTTP/2", e)
	}
	if _, err := http.Get(app.URL + "/echo"); err == nil {
		t.Fatal("the app's certificate verified without its CA")
	}

	// WebSockets need HTTP/1.1 (no RFC 8441 here).
	tr := app.Client().Transport.(*http.Transport).Clone()
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+app.Addr+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "tick 1" {
		t.Fatalf("%q, %v", msg, err)
	}
}
