package api

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// consoleCSP keeps the console to its own origin: no inline script, no
// CDN, no frames.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// console serves the web console (Server.Console) for GET and HEAD requests
// that no route took, outside /api: a file by its path, and index.html for
// any other path without a file extension, so that the console's deep links
// (/containers/web-1) load the app. Everything else falls through to the
// 404 problem.
func (s *Server) console() gin.HandlerFunc {
	var etags sync.Map // file name -> quoted ETag
	etag := func(name string) string {
		if v, ok := etags.Load(name); ok {
			return v.(string)
		}
		b, err := fs.ReadFile(s.Console, name)
		if err != nil {
			return ""
		}
		sum := sha256.Sum256(b)
		tag := `"` + hex.EncodeToString(sum[:12]) + `"`
		etags.Store(name, tag)
		return tag
	}
	return func(c *gin.Context) {
		p := c.Request.URL.Path
		if s.Console == nil || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) ||
			p == "/api" || strings.HasPrefix(p, "/api/") {
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if st, err := fs.Stat(s.Console, name); name == "" || err != nil || st.IsDir() {
			if name != "" && strings.Contains(path.Base(name), ".") {
				return // a missing asset: 404, not the app
			}
			name = "index.html"
		}
		h := c.Writer.Header()
		h.Set("Cache-Control", "no-cache") // revalidated by ETag: a new binary serves new files at once
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if tag := etag(name); tag != "" {
			h.Set("ETag", tag)
		}
		// ServeFileFS redirects requests for .../index.html to .../; the
		// app's own paths never end so, so serve the bytes by name.
		if name == "index.html" {
			c.Request.URL.Path = "/"
		}
		http.ServeFileFS(c.Writer, c.Request, s.Console, name)
		c.Request.URL.Path = p // for the request log
		c.Abort()
	}
}
