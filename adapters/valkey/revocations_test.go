package valkey_test

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/revocationtest"
)

func TestRevocationsMiniredis(t *testing.T) {
	revocationtest.Run(t, func(t *testing.T, keep time.Duration) ports.RevocationCache {
		mr := miniredis.RunT(t)
		return vk.NewRevocations(open(t, "redis://"+mr.Addr()), "env:", keep, time.Second)
	})
}

func TestRevocationsServer(t *testing.T) {
	c := sharedServer(t)
	revocationtest.Run(t, func(t *testing.T, keep time.Duration) ports.RevocationCache {
		prefix := randomPrefix(t)
		t.Cleanup(func() { deleteKeys(t, c, prefix) })
		r := vk.NewRevocations(c, prefix, keep, time.Second)
		if want := prefix + "{auth}:revoked"; r.Key() != want {
			t.Fatalf("key %q, want %q", r.Key(), want)
		}
		return r
	})
}
