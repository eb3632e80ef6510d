package openapitest

import (
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
)

// ErrorCodes maps "METHOD /path" → HTTP status → the error codes the
// document says that answer can carry.
type ErrorCodes map[string]map[int][]string

// CheckErrors checks every 4xx and 5xx answer of every operation: its body
// is JSON whose schema is the component schema errorSchema (the ErrorBody)
// narrowed by allOf to an enum of codes; each code is an apierr code whose
// HTTP status is the answer's; and a 429 documents a Retry-After header.
// It returns the codes per operation and status.
func (d *Doc) CheckErrors(errorSchema string) (ErrorCodes, []string) {
	var probs []string
	out := ErrorCodes{}
	wantRef := "#/components/schemas/" + errorSchema
	for _, op := range d.Operations() {
		resps, _ := op.Spec["responses"].(map[string]any)
		for _, key := range sortedKeys(resps) {
			status, err := strconv.Atoi(key)
			if err != nil || status < 400 {
				continue
			}
			where := fmt.Sprintf("%s: %s %d", d.Name, op.Key(), status)
			add := func(format string, args ...any) { probs = append(probs, where+": "+fmt.Sprintf(format, args...)) }
			r, err := d.Deref(resps[key])
			if err != nil {
				add("%v", err)
				continue
			}
			if status == http.StatusTooManyRequests && !hasHeader(r, "Retry-After") {
				add("documents no Retry-After header")
			}
			content, _ := r["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			if media == nil || len(content) != 1 {
				add("content is %v, want application/json only", sortedKeys(content))
				continue
			}
			codes, err := d.errorCodes(media["schema"], wantRef)
			if err != nil {
				add("%v", err)
				continue
			}
			for _, c := range codes {
				code := apierr.Code(c)
				switch {
				case !code.Known():
					add("code %q is not an apierr code", c)
				case code.HTTPStatus() != status:
					add("code %q is answered with HTTP %d, not %d", c, code.HTTPStatus(), status)
				}
			}
			if out[op.Key()] == nil {
				out[op.Key()] = map[int][]string{}
			}
			out[op.Key()][status] = codes
		}
	}
	return out, probs
}

// errorCodes reads the codes of an error answer's schema: allOf of a $ref
// to the error schema and a branch whose properties.code has an enum.
func (d *Doc) errorCodes(schema any, wantRef string) ([]string, error) {
	sm, ok := schema.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema is a %T, want a mapping", schema)
	}
	if ref, ok := sm["$ref"].(string); ok && ref == wantRef {
		return nil, fmt.Errorf("schema is plain %s: list the codes (allOf with properties.code.enum)", wantRef)
	}
	// An answer shared through components may itself be a $ref.
	s, err := d.Deref(sm)
	if err != nil {
		return nil, err
	}
	all, ok := s["allOf"].([]any)
	if !ok {
		return nil, fmt.Errorf("schema is not allOf [%s, {properties: {code: {enum: [...]}}}]", wantRef)
	}
	var codes []string
	hasBase := false
	for _, b := range all {
		bm, _ := b.(map[string]any)
		if ref, _ := bm["$ref"].(string); ref == wantRef {
			hasBase = true
			continue
		}
		props, _ := bm["properties"].(map[string]any)
		code, _ := props["code"].(map[string]any)
		enum, _ := code["enum"].([]any)
		for _, e := range enum {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("code enum holds a %T", e)
			}
			codes = append(codes, s)
		}
	}
	if !hasBase {
		return nil, fmt.Errorf("allOf has no $ref %s", wantRef)
	}
	if len(codes) == 0 {
		return nil, fmt.Errorf("lists no codes (properties.code.enum)")
	}
	return codes, nil
}

func hasHeader(resp map[string]any, name string) bool {
	hs, _ := resp["headers"].(map[string]any)
	for k := range hs {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// response returns the documented answer of op for status: the exact
// status, else its class (4XX), else default.
func (d *Doc) response(op Operation, status int) (map[string]any, error) {
	resps, _ := op.Spec["responses"].(map[string]any)
	for _, key := range []string{strconv.Itoa(status), strconv.Itoa(status/100) + "XX", "default"} {
		if r, ok := resps[key]; ok {
			return d.Deref(r)
		}
	}
	return nil, fmt.Errorf("%s: %s does not document status %d (it has %v)", d.Name, op.Key(), status, sortedKeys(resps))
}

// CheckResponse checks a real answer of op against the document: the
// status is documented; the body is JSON valid against the documented
// schema (strictly: no undocumented fields), or empty when none is
// documented; required documented headers are present and valid.
func (d *Doc) CheckResponse(op Operation, status int, header http.Header, body []byte) []string {
	r, err := d.response(op, status)
	if err != nil {
		return []string{fmt.Sprintf("%v; body %s", err, truncate(body))}
	}
	where := fmt.Sprintf("%s: %s %d", d.Name, op.Key(), status)
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, where+": "+fmt.Sprintf(format, args...)) }
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			add("documents no body, got %q", truncate(body))
		}
	} else {
		mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
		media, ok := content[mt].(map[string]any)
		if err != nil || !ok {
			add("Content-Type is %q, want one of %v", header.Get("Content-Type"), sortedKeys(content))
		} else if schema, ok := media["schema"]; ok {
			for _, p := range d.ValidateJSON(schema, body) {
				add("body %s", p)
			}
		}
	}
	hs, _ := r["headers"].(map[string]any)
	for _, name := range sortedKeys(hs) {
		h, err := d.Deref(hs[name])
		if err != nil {
			add("header %s: %v", name, err)
			continue
		}
		v := header.Get(name)
		if v == "" {
			if req, _ := h["required"].(bool); req {
				add("required header %s is missing", name)
			}
			continue
		}
		s, _ := d.Deref(h["schema"])
		if stringList(s["type"]) != nil && slices.Equal(stringList(s["type"]), []string{"integer"}) {
			n, err := strconv.Atoi(v)
			if min, ok := number(s["minimum"]); err != nil || (ok && float64(n) < min) {
				add("header %s is %q, want an integer of at least %v", name, v, s["minimum"])
			}
		}
	}
	return probs
}

// CheckRequest validates a request body against op's documented one.
func (d *Doc) CheckRequest(op Operation, body []byte) []string {
	rb, err := d.Deref(op.Spec["requestBody"])
	if err != nil {
		return []string{fmt.Sprintf("%s: %s documents no request body", d.Name, op.Key())}
	}
	content, _ := rb["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	if media == nil {
		return []string{fmt.Sprintf("%s: %s documents no application/json request body", d.Name, op.Key())}
	}
	var probs []string
	for _, p := range d.ValidateJSON(media["schema"], body) {
		probs = append(probs, fmt.Sprintf("%s: %s request body %s", d.Name, op.Key(), p))
	}
	return probs
}
