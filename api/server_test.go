package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/airlockhq/airlock"
)

// TestThrottledErrorSaysWhenToRetry: a throttled refusal is 429 with a
// Retry-After header taken from its details.
func TestThrottledErrorSaysWhenToRetry(t *testing.T) {
	s := &Server{}
	rec := httptest.NewRecorder()
	err := &airlock.Error{Code: airlock.ELOCKED, Message: "too many failed attempts", Details: map[string]any{"retry_after_seconds": 8}}
	s.writeError(rec, httptest.NewRequest("POST", "/api/v1/login", nil), err)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "8" {
		t.Fatalf("status %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	rec = httptest.NewRecorder()
	s.writeError(rec, httptest.NewRequest("POST", "/api/v1/login", nil), airlock.Errorf(airlock.EUNAUTHORIZED, "no"))
	if rec.Header().Get("Retry-After") != "" {
		t.Fatal("Retry-After on a non-throttled error")
	}
}
