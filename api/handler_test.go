package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
)

// TestServe pins the decode → call → encode shape: a body that does not
// decode never reaches the call; the call's answer is written with the
// handler's status, its error through the one error table.
func TestServe(t *testing.T) {
	s := &Server{Logger: slog.New(slog.DiscardHandler)}
	type in struct {
		Name string `json:"name"`
	}
	calls := 0
	h := func(w http.ResponseWriter, r *http.Request) {
		serve(s, w, r, http.StatusCreated, func(in in) (map[string]string, error) {
			calls++
			if in.Name == "taken" {
				return nil, airlock.Errorf(airlock.ECONFLICT, "%s exists", in.Name)
			}
			return map[string]string{"created": in.Name}, nil
		})
	}
	for _, c := range []struct {
		body   string
		status int
		code   string
		calls  int
	}{
		{`{"name":"web-1"}`, http.StatusCreated, "", 1},
		{`{"name":"taken"}`, http.StatusConflict, airlock.ECONFLICT, 1},
		{`{"name":"x","extra":1}`, http.StatusBadRequest, airlock.EINVALID, 0},
		{``, http.StatusBadRequest, airlock.EINVALID, 0},
		{`{"name":"x"} {}`, http.StatusBadRequest, airlock.EINVALID, 0},
	} {
		calls = 0
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("POST", "/api/v1/x", strings.NewReader(c.body)))
		if rec.Code != c.status || calls != c.calls {
			t.Errorf("body %q: status %d, %d calls; want %d, %d", c.body, rec.Code, calls, c.status, c.calls)
			continue
		}
		var out errorBody
		json.Unmarshal(rec.Body.Bytes(), &out)
		if out.Error.Code != c.code {
			t.Errorf("body %q: error code %q, want %q (%s)", c.body, out.Error.Code, c.code, rec.Body)
		}
		if c.code == "" && !strings.Contains(rec.Body.String(), `"created": "web-1"`) {
			t.Errorf("body %q: answer %s", c.body, rec.Body)
		}
	}
}
