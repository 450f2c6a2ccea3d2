package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// Role ranks: a role may do what every lower rank may. Node tokens stand
// apart: they reach the node protocol of their own host, and list, create,
// get and delete the containers of their own host (what the agent's CNI
// server needs, nodeContainers), nothing else.
const (
	roleViewer = iota + 1
	roleOperator
	roleAdmin
)

var rank = map[string]int{openapi.RoleViewer: roleViewer, openapi.RoleOperator: roleOperator, openapi.RoleAdmin: roleAdmin}

const tokenKey = "token"

// authenticate resolves the bearer token, or answers 401.
func (s *Server) authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		secret, ok := bearer(c.GetHeader("Authorization"))
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="switchyard"`)
			fail(c, problem.Unauthorized("send Authorization: Bearer <token>"))
			return
		}
		// A blocked address learns nothing of tokens it has not used
		// successfully before, not even from the cache (ratelimit.go).
		key := clientKey(c.Request)
		if wait := s.authFails.blocked(key, secret); wait > 0 {
			p, retry := tooManyFailures(wait)
			c.Header("Retry-After", retry)
			fail(c, p)
			return
		}
		t, ok := s.tokens.get(secret)
		if !ok {
			var err error
			if t, err = s.Store.Authenticate(c.Request.Context(), secret); err != nil {
				if pe, ok := problem.As(err); ok && pe.Status == http.StatusUnauthorized {
					s.authFails.failed(key)
				}
				c.Header("WWW-Authenticate", `Bearer realm="switchyard", error="invalid_token"`)
				fail(c, err)
				return
			}
			s.tokens.put(secret, t)
			s.authFails.succeeded(key, secret)
		}
		c.Set(tokenKey, t)
		c.Next()
	}
}

// bearer returns the credentials of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 9110, section 11.1).
func bearer(h string) (string, bool) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(h), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return "", false
	}
	return secret, true
}

func token(c *gin.Context) openapi.Token {
	t, _ := c.Get(tokenKey)
	tok, _ := t.(openapi.Token)
	return tok
}

// actor names who is writing, for the audit log: the token's name (unique
// among tokens), as the contract's AuditEntry.actor and ?actor= say.
func actor(c *gin.Context) string {
	return token(c).Name
}

// allow lets through tokens of at least the given rank, with requests the
// contract accepts.
func (s *Server) allow(min int) gin.HandlerFunc {
	return func(c *gin.Context) {
		t := token(c)
		if t.Role == openapi.RoleNode && nodeContainerRoutes[c.Request.Method+" "+c.FullPath()] {
			s.nodeContainers(c, t)
			return
		}
		if rank[t.Role] < min {
			fail(c, problem.Forbidden("a %s token may not %s %s", t.Role, c.Request.Method, c.FullPath()))
			return
		}
		if err := s.contract.check(c); err != nil {
			fail(c, err)
			return
		}
		c.Next()
	}
}

// nodeScope lets a node token reach only its own host's node routes;
// admins may reach any. Requests must pass the contract.
func (s *Server) nodeScope() gin.HandlerFunc {
	return func(c *gin.Context) {
		t := token(c)
		switch {
		case t.Role == openapi.RoleAdmin:
		case t.Role == openapi.RoleNode && t.Host == c.Param("host"):
		case t.Role == openapi.RoleNode:
			fail(c, problem.Forbidden("this node token belongs to host %s, not %s", t.Host, c.Param("host")))
			return
		default:
			fail(c, problem.Forbidden("the node protocol needs a node token"))
			return
		}
		if err := s.contract.check(c); err != nil {
			fail(c, err)
			return
		}
		c.Next()
	}
}

// nodeContainerRoutes are the container routes a node token may use.
var nodeContainerRoutes = map[string]bool{
	"GET /api/v1/containers":         true,
	"POST /api/v1/containers":        true,
	"GET /api/v1/containers/:ref":    true,
	"DELETE /api/v1/containers/:ref": true,
}

// nodeContainers lets a node token reach a container route when the
// containers involved are on its own host: a list must ask ?host= its
// host, a create must name its host, a get or delete must find the
// container on its host (another host's container answers 403, the same
// as a missing one would not: the agent learns nothing it may not touch).
func (s *Server) nodeContainers(c *gin.Context, t openapi.Token) {
	if err := s.contract.check(c); err != nil {
		fail(c, err)
		return
	}
	var host string
	switch {
	case c.Request.Method == http.MethodGet && c.Param("ref") == "":
		host = c.Query("host")
	case c.Request.Method == http.MethodPost:
		var body struct {
			Host string `json:"host"`
		}
		if b, ok := sentBody(c.Request); ok {
			_ = json.Unmarshal(b, &body) // the contract checked it parses
		}
		host = body.Host
	default:
		ct, err := s.Store.GetContainer(c.Request.Context(), c.Param("ref"), c.Query("network"))
		if err != nil {
			fail(c, err)
			return
		}
		host = ct.Host
	}
	if host != t.Host {
		fail(c, problem.Forbidden("this node token belongs to host %s: it may reach only containers on that host (with ?host=%s on lists), not %q",
			t.Host, t.Host, host))
		return
	}
	c.Next()
}
