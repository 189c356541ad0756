// Package ports declares the interfaces between the domain (core) and the
// outside world (adapters), and the plain data types that cross them.
//
// It imports nothing but the standard library, so core can depend on it and
// every adapter can implement it without import cycles.
package ports
