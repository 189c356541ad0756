// Package bench holds the benchmarks of the availability mirror
// (adapters/valkey) against the Postgres fallback path (adapters/postgres)
// and against the original Node design's Valkey keys (mitras:online and
// mitras:deactivated SETs, one mitra:capacity:<id> and one
// mitra:heartbeat:<id> STRING per mitra), measured in the same run at 1k, 10k
// and 100k online mitras. The package has no code of its own beyond its
// tests: run the benchmarks with
//
//	go tool -modfile=tools/go.mod task bench:mirror
//
// (or bench:mirror:quick for 1k and 10k only). A plain `go test ./bench/`
// runs only a smoke test at 1k online mitras, which checks that the three
// designs agree on every measured answer. docs/benchmarks.md describes the
// method and holds the results.
package bench
