// Package webui holds Switchyard's web console: a single-page app of plain
// JavaScript modules, HTML and CSS in static/, embedded into the controller
// binary and served at / (controller/internal/api/console.go). The app talks
// only to the REST API of openapi/openapi.yaml with the token the user signs
// in with. It has no build step and loads nothing from the network at run
// time. This package must not hold any server logic: it only exposes the
// files.
package webui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files returns the console's files, index.html at the root.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // "static" is embedded above
	}
	return sub
}
