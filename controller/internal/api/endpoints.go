package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/openapi"
)

// serviceEndpoints answers GET /services/:ref/endpoints: the backends the
// service's selector picks, with their weight and health.
func (s *Server) serviceEndpoints(c *gin.Context) {
	eps, err := s.Store.ServiceEndpoints(c.Request.Context(), c.Param("ref"), c.Query("network"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, openapi.EndpointList{Items: eps})
}
