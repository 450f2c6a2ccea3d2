package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
)

// DefaultPolicyLogLimit is a policy log page's size without ?limit=.
const DefaultPolicyLogLimit = 100

// policyStats answers GET /policies/:ref/stats: every rule's counters from
// the agents' reports, summed over hosts, with each host's part.
func (s *Server) policyStats(c *gin.Context) {
	st, err := s.Store.PolicyStats(c.Request.Context(), c.Param("ref"), c.Query("network"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// policyLog answers GET /policies/:ref/log?since=&limit=: the connections
// its rules decided, oldest first, from a cursor or a time on.
func (s *Server) policyLog(c *gin.Context) {
	o, err := store.ParsePolicyLogSince(c.Query("since"))
	if err != nil {
		fail(c, err)
		return
	}
	o.Limit = DefaultPolicyLogLimit
	if l, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxLimit {
			fail(c, problem.Invalid("limit", "limit must be a number from 1 to %d", store.MaxLimit))
			return
		}
		o.Limit = n
	}
	page, err := s.Store.PolicyLog(c.Request.Context(), c.Param("ref"), c.Query("network"), o)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}
