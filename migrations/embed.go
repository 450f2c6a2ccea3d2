// Package migrations holds the SQL schema of Switchyard as goose migrations,
// embedded into the controller binary. It is the only source of the schema:
// no Go code creates or alters tables. It must not contain data fixes that
// depend on code of a given version.
package migrations

import "embed"

// FS holds every migration, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
