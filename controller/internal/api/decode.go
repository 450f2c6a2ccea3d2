package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// readBody reads at most MaxBody bytes.
func readBody(c *gin.Context) ([]byte, error) {
	if c.Request.Body == nil {
		return nil, problem.Invalid("", "a JSON body is required")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, problem.TooLarge("the body is over %d bytes", MaxBody)
	}
	if err != nil {
		return nil, problem.Invalid("", "reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, problem.Invalid("", "a JSON body is required")
	}
	return body, nil
}

// readObject reads a body that must be one JSON object, and returns it
// both raw and decoded.
func readObject(c *gin.Context) ([]byte, map[string]any, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, nil, err
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, nil, jsonProblem(err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, problem.Invalid("", "the body must be a JSON object")
	}
	return body, obj, nil
}

// decode reads a JSON body of at most MaxBody bytes into v, refusing
// unknown fields.
func decode(c *gin.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return unmarshalStrict(body, v)
}

func unmarshalStrict(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return problem.Invalid("", "the body holds more than one JSON value")
	}
	return nil
}

// applyPatch applies the JSON merge patch (RFC 7396) patch to cur, has
// check vet the result, and decodes it into v.
func applyPatch(patch map[string]any, cur any, v any, check func(merged []byte) error) error {
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	var target any
	if err := json.Unmarshal(curJSON, &target); err != nil {
		return err
	}
	merged, err := json.Marshal(mergePatch(target, patch))
	if err != nil {
		return err
	}
	if err := check(merged); err != nil {
		return err
	}
	return unmarshalStrict(merged, v)
}

// mergePatch implements RFC 7396.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}

// readOnlyChanged refuses an update (a whole object or a merge patch) that
// gives one of the read-only fields a value other than the stored one:
// sending back what was read is fine, changing it is a 400 naming it.
func readOnlyChanged(asked map[string]any, cur any, readOnly []string) error {
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	var stored map[string]any
	if err := json.Unmarshal(curJSON, &stored); err != nil {
		return err
	}
	for _, f := range readOnly {
		v, ok := asked[f]
		if ok && !reflect.DeepEqual(v, stored[f]) {
			was, _ := json.Marshal(stored[f])
			return problem.Invalid(f, "%s is read-only: it is %s and cannot be set by a client", f, was)
		}
	}
	return nil
}

// jsonProblem explains a JSON decoding error, naming the field when it can.
func jsonProblem(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := apiField(typeErr.Field)
		return problem.Invalid(field, "%s must be %s, not a JSON %s", orBody(field), typeErr.Type.String(), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return problem.Invalid("", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem.Invalid(field, "unknown field %q", field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Invalid("", "the JSON body is incomplete")
	}
	return problem.Invalid("", "malformed JSON: %v", err)
}

// apiField turns the path encoding/json reports ("Meta.revision", with the
// Go names of embedded structs) into the API's field name ("revision"):
// API fields are lowerCamelCase, so capitalized segments are Go's.
func apiField(goPath string) string {
	var keep []string
	for _, seg := range strings.Split(goPath, ".") {
		if seg == "" || unicode.IsUpper(rune(seg[0])) {
			continue
		}
		keep = append(keep, seg)
	}
	return strings.Join(keep, ".")
}
