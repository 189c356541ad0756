package ports

import "context"

// CacheHealth tells which cache backend serves the hot paths and whether it answers.
type CacheHealth interface {
	// Backend is the CACHE_BACKEND name: memory, valkey or none.
	Backend() string
	// Healthy is false while the cache is unreachable.
	Healthy(ctx context.Context) bool
}
