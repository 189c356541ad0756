package httpapi

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/halobestie/mitra-availability/docs"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = map[string]string{
	"get": http.MethodGet, "put": http.MethodPut, "post": http.MethodPost, "delete": http.MethodDelete,
	"options": http.MethodOptions, "head": http.MethodHead, "patch": http.MethodPatch, "trace": http.MethodTrace,
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(docs.OpenAPI, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml does not parse: %v", err)
	}
	if v, _ := doc["openapi"].(string); v != "3.0.3" {
		t.Fatalf("openapi version = %q, want 3.0.3", v)
	}
	return doc
}

func docPaths(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	raw, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("docs/openapi.yaml has no paths object")
	}
	out := make(map[string]map[string]any, len(raw))
	for p, item := range raw {
		m, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("path %s is not an object", p)
		}
		out[p] = m
	}
	return out
}

// echoPathToOpenAPI turns "/api/admin/mitras/:id" into "/api/admin/mitras/{id}".
func echoPathToOpenAPI(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}

// TestOpenAPIMatchesRoutes fails when docs/openapi.yaml and the routes the
// server registers differ in either direction.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)

	documented := map[string]bool{}
	for p, item := range docPaths(t, doc) {
		for key := range item {
			if m, ok := openAPIMethods[key]; ok {
				documented[m+" "+p] = true
			}
		}
	}

	served := map[string]bool{}
	for _, r := range buildServerForTest(t).Routes() {
		if !slices.Contains(slices.Collect(maps.Values(openAPIMethods)), r.Method) {
			continue // echo's internal entries, such as RouteNotFound handlers
		}
		served[r.Method+" "+echoPathToOpenAPI(r.Path)] = true
	}

	var notServed, notDocumented []string
	for k := range documented {
		if !served[k] {
			notServed = append(notServed, k)
		}
	}
	for k := range served {
		if !documented[k] {
			notDocumented = append(notDocumented, k)
		}
	}
	slices.Sort(notServed)
	slices.Sort(notDocumented)
	if len(notServed) > 0 {
		t.Errorf("documented in docs/openapi.yaml but not served (%d):\n  %s",
			len(notServed), strings.Join(notServed, "\n  "))
	}
	if len(notDocumented) > 0 {
		t.Errorf("served but not documented in docs/openapi.yaml (%d):\n  %s",
			len(notDocumented), strings.Join(notDocumented, "\n  "))
	}
}

// TestOpenAPIWellFormed checks what a route comparison cannot: every $ref
// resolves, operation ids are unique, every operation has responses, every
// error response uses the envelope, and every path parameter is declared.
func TestOpenAPIWellFormed(t *testing.T) {
	doc := loadOpenAPI(t)

	// Every $ref resolves.
	var refs []string
	collectRefs(doc, &refs)
	if len(refs) == 0 {
		t.Fatal("no $ref found; the walker is broken")
	}
	for _, ref := range refs {
		if _, err := resolveRef(doc, ref); err != nil {
			t.Errorf("$ref %s: %v", ref, err)
		}
	}

	ids := map[string]string{}
	paramRE := regexp.MustCompile(`\{([^}]+)\}`)
	for p, item := range docPaths(t, doc) {
		for key, opAny := range item {
			if _, ok := openAPIMethods[key]; !ok {
				continue
			}
			where := strings.ToUpper(key) + " " + p
			op, ok := opAny.(map[string]any)
			if !ok {
				t.Errorf("%s: operation is not an object", where)
				continue
			}

			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q already used by %s", where, id, prev)
			}
			ids[id] = where

			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for status, respAny := range responses {
				checkErrorResponse(t, doc, where, status, respAny)
			}

			// Every {param} of the template is declared as a path parameter.
			declared := map[string]bool{}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				params, _ := list.([]any)
				for _, pa := range params {
					pm := derefMap(t, doc, pa)
					if pm["in"] == "path" {
						name, _ := pm["name"].(string)
						declared[name] = true
					}
				}
			}
			for _, m := range paramRE.FindAllStringSubmatch(p, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter %q is not declared", where, m[1])
				}
			}
		}
	}
}

// checkErrorResponse requires every 4xx/5xx response but /readyz's 503 to use the Error schema.
func checkErrorResponse(t *testing.T, doc map[string]any, where, status string, respAny any) {
	t.Helper()
	if !strings.HasPrefix(status, "4") && !strings.HasPrefix(status, "5") {
		return
	}
	if where == "GET /readyz" {
		return // its 503 body is the readiness report, by contract
	}
	resp := derefMap(t, doc, respAny)
	content, _ := resp["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	if ref, _ := schema["$ref"].(string); ref != "#/components/schemas/Error" {
		t.Errorf("%s %s: error response schema is %v, want the Error envelope", where, status, schema)
	}
}

func derefMap(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		target, err := resolveRef(doc, ref)
		if err != nil {
			t.Fatalf("$ref %s: %v", ref, err)
		}
		m, _ = target.(map[string]any)
	}
	return m
}

func collectRefs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if s, ok := child.(string); ok && k == "$ref" {
				*out = append(*out, s)
				continue
			}
			collectRefs(child, out)
		}
	case []any:
		for _, child := range x {
			collectRefs(child, out)
		}
	}
}

// resolveRef follows a local JSON pointer such as #/components/schemas/Error.
func resolveRef(doc map[string]any, ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("only local references are allowed")
	}
	var cur any = doc
	for _, tok := range strings.Split(ptr, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("%q not found", tok)
		}
	}
	return cur, nil
}
