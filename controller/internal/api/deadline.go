package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// DefaultRequestTimeout bounds the work of one request (its database
// statements, above all): with a database that hangs (a server that takes
// connections and never answers), a read answers 503 then instead of
// never. Writes are bounded sooner by the store's acquire timeout.
const DefaultRequestTimeout = 10 * time.Second

// selfBounded reports the requests that bound themselves: the event
// stream, the node long-poll and writes waiting until realized
// (?timeout=).
func selfBounded(c *gin.Context) bool {
	return longRoutes[c.FullPath()] || (c.Request.Method != http.MethodGet && c.Query("wait") == "realized")
}

// boundRequests gives every request but the self-bounded ones a deadline of
// s.RequestTimeout (DefaultRequestTimeout when 0); the store's errors past
// it are 503s (store.Unavailable).
func (s *Server) boundRequests() gin.HandlerFunc {
	d := s.RequestTimeout
	if d <= 0 {
		d = DefaultRequestTimeout
	}
	return func(c *gin.Context) {
		if selfBounded(c) {
			c.Next()
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), d)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
