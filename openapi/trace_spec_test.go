package openapi

// The trace and node job schemas join the field-by-field checks of
// spec_test.go.
func init() {
	for name, v := range map[string]any{
		"TraceRequest": TraceRequest{}, "Trace": Trace{}, "NodeJobs": NodeJobs{}, "NodeJobResult": NodeJobResult{},
	} {
		schemaTypes[name] = v
	}
	outputOnly["Trace"] = true
	outputOnly["NodeJobs"] = true
}
