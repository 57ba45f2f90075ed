package httpgw

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkDetailsJSON fails unless the hand-written encoders write what
// json.Marshal writes for the same values.
func checkDetailsJSON(t *testing.T, rq requestDetails, rs responseDetails) {
	t.Helper()
	for _, c := range []struct {
		v   any
		got []byte
	}{{rq, rq.json()}, {rs, rs.json()}} {
		want, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.got, want) {
			t.Fatalf("encoded %+v as\n%s\njson.Marshal:\n%s", c.v, c.got, want)
		}
	}
}

func TestDetailsJSON(t *testing.T) {
	cases := []struct {
		name string
		rq   requestDetails
		rs   responseDetails
	}{
		{"zero", requestDetails{}, responseDetails{}},
		{"get", requestDetails{N: 1, Method: "GET", Host: "app.apps.example.com", Path: "/echo"},
			responseDetails{N: 1, Status: 200, BytesOut: 123, DurationMS: 4}},
		{"query-and-body", requestDetails{N: 1 << 40, Method: "POST", Host: "h", Path: "/a b/<c>&d", Query: "q=1&r=\"x\"",
			ContentLength: -1, Upgrade: "websocket"},
			responseDetails{N: -3, Status: 101, BytesIn: 1 << 50, BytesOut: -1, DurationMS: 99999, Error: "dial tcp: \"refused\"\n"}},
		{"denied", requestDetails{N: 0, Method: "DELETE", Path: "/x\xff\u2028", QueryOmitted: true, Denied: "access_level"},
			responseDetails{Error: "response aborted"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkDetailsJSON(t, c.rq, c.rs) })
	}
}

// FuzzDetailsJSON compares the encoders with json.Marshal on arbitrary
// (also invalid UTF-8) methods, paths, queries and errors.
func FuzzDetailsJSON(f *testing.F) {
	f.Add("GET", "/echo", "a=1", "", int64(0), int64(200), false)
	f.Add("P\x00ST", "/<é>\xff", "", "boom \"x\"", int64(-1), int64(-7), true)
	f.Fuzz(func(t *testing.T, method, path, query, errText string, n, num int64, omitted bool) {
		rq := requestDetails{N: n, Method: method, Host: path, Path: path, Query: query, QueryOmitted: omitted,
			ContentLength: num, Upgrade: query, Denied: errText}
		rs := responseDetails{N: n, Status: int(num), BytesIn: num, BytesOut: n, DurationMS: num, Error: errText}
		checkDetailsJSON(t, rq, rs)
	})
}
