// Package openapi is Switchyard's contract: openapi.yaml describes the REST API
// and the node protocol, and the Go types in this package are the JSON shapes
// it describes, shared by the controller, the node agent, syctl and tests.
// spec_test.go keeps the two from drifting apart. It must not hold behaviour:
// no HTTP handlers, no I/O beyond the embedded document, no dependency on
// other Switchyard packages.
package openapi

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// SpecYAML is openapi.yaml, as served at GET /openapi.yaml.
//
//go:embed openapi.yaml
var SpecYAML []byte

// Load parses SpecYAML and validates it as an OpenAPI 3.0 document. Every call
// returns a new document, which the caller may modify.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(SpecYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// StringFormats are the string formats openapi.yaml uses beyond kin-openapi's
// defaults, for validators of requests (the controller) and responses (tests).
func StringFormats() openapi3.SchemaValidationOption {
	return openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
		"uuid": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562),
		"ipv4": openapi3.NewIPValidator(true),
	})
}
