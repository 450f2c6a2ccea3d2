package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// A database error that is no problem of the client's answers 503
// problem+json with Retry-After, not 500.
func TestFailUnavailable(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED): 503,
		fmt.Errorf("a bug"):                          500,
	} {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest("GET", "/api/v1/networks", nil)
		fail(c, err)
		var body map[string]any
		if w.Code != want || w.Header().Get("Content-Type") != ProblemContentType || json.Unmarshal(w.Body.Bytes(), &body) != nil {
			t.Fatalf("%v: %d %s %s", err, w.Code, w.Header(), w.Body)
		}
		if (want == http.StatusServiceUnavailable) != (w.Header().Get("Retry-After") == "1") {
			t.Fatalf("%v: Retry-After %q", err, w.Header().Get("Retry-After"))
		}
		if want == 503 && body["detail"] != "the database cannot be reached" {
			t.Fatalf("%v: %v", err, body)
		}
	}
}

// A request's work has a deadline, past which the store's error is a 503;
// the event stream, the long-poll and waits bound themselves.
func TestBoundRequests(t *testing.T) {
	s := &Server{RequestTimeout: 20 * time.Millisecond}
	r := gin.New()
	r.Use(unboundedWrites(), s.boundRequests())
	blocked := func(c *gin.Context) {
		<-c.Request.Context().Done()
		fail(c, fmt.Errorf("query: %w", c.Request.Context().Err()))
	}
	unbounded := func(c *gin.Context) {
		if _, ok := c.Request.Context().Deadline(); ok {
			t.Errorf("%s %s has a deadline", c.Request.Method, c.Request.URL)
		}
		c.Status(http.StatusNoContent)
	}
	r.GET("/api/v1/networks", blocked)
	r.GET("/api/v1/events", unbounded)
	r.POST("/api/v1/networks", unbounded)
	for req, want := range map[*http.Request]int{
		httptest.NewRequest("GET", "/api/v1/networks", nil):                           503,
		httptest.NewRequest("GET", "/api/v1/events", nil):                             204,
		httptest.NewRequest("POST", "/api/v1/networks?wait=realized&timeout=1s", nil): 204,
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != want || (want == 503 && w.Header().Get("Retry-After") == "") {
			t.Errorf("%s %s: %d %s %s", req.Method, req.URL, w.Code, w.Header(), w.Body)
		}
	}
}
