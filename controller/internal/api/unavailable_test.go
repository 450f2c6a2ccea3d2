package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

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
