// Package docs holds the service's OpenAPI document, built into the binary so
// that GET /docs serves exactly the document that ships with the code.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the OpenAPI 3.0.3 description of every route the
// server registers. A test in adapters/httpapi fails when the two disagree.
//
//go:embed openapi.yaml
var OpenAPI []byte
