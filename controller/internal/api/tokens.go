package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

func (s *Server) listTokens(c *gin.Context) {
	items, err := s.Store.ListTokens(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, openapi.List[openapi.Token]{Items: items})
}

func (s *Server) createToken(c *gin.Context) {
	var t openapi.Token
	if err := decode(c, &t); err != nil {
		fail(c, err)
		return
	}
	out, err := s.Store.CreateToken(c.Request.Context(), actor(c), t)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, out)
}

func (s *Server) getToken(c *gin.Context) {
	t, err := s.Store.GetToken(c.Request.Context(), c.Param("ref"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

func (s *Server) revokeToken(c *gin.Context) {
	if err := s.Store.RevokeToken(c.Request.Context(), actor(c), c.Param("ref")); err != nil {
		fail(c, err)
		return
	}
	s.tokens.clear() // the other replicas clear theirs on the notification
	c.Status(http.StatusNoContent)
}

func (s *Server) listAudit(c *gin.Context) {
	o := store.AuditOptions{Kind: c.Query("kind"), Actor: c.Query("actor"), Ref: c.Query("ref"), Continue: c.Query("continue")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxLimit {
			fail(c, problem.Invalid("limit", "limit must be a number from 1 to %d", store.MaxLimit))
			return
		}
		o.Limit = n
	}
	items, next, err := s.Store.ListAudit(c.Request.Context(), o)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, openapi.List[openapi.AuditEntry]{Items: items, Continue: next})
}

// whoami answers the caller's own token, without its secret: what a
// client (the web console) needs to show what its role may do.
func (s *Server) whoami(c *gin.Context) {
	t := token(c)
	t.Secret = ""
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, t)
}
