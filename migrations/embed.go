// Package migrations holds the service's goose SQL migrations, embedded in the
// binary, and functions that apply them with a goose Provider.
package migrations

import "embed"

// FS holds every migration file (NNNNN_name.sql, with goose Up and Down sections).
//
//go:embed *.sql
var FS embed.FS
