// Package client is the Go client of the service's HTTP API, generated from
// docs/openapi.yaml by oapi-codegen (client.gen.go; `task generate` writes it,
// `task lint` fails when it is not what the document generates). The views
// (Session, Mitra, User, …) and the WebSocket events (SessionOfferEvent, …)
// are the document's schemas; nothing else in the repository copies them.
//
// New returns the typed client; its XxxWithResponse methods answer with the
// status, the raw body and the decoded body of each documented status.
package client

//go:generate go tool -modfile=../tools/go.mod oapi-codegen -config oapi-codegen.yaml -o client.gen.go ../docs/openapi.yaml

import (
	"context"
	"net/http"
)

// New returns a client of the service at baseURL (http://host:port) that
// sends its requests through hc.
func New(baseURL string, hc *http.Client) (*ClientWithResponses, error) {
	return NewClientWithResponses(baseURL, WithHTTPClient(hc))
}

// WithToken authenticates one request with an access token.
func WithToken(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}
