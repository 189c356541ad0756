package memory

import (
	"testing"

	"github.com/halobestie/mitra-availability/ports/porttest"
)

func newStores(*testing.T) porttest.Stores {
	s := NewStore()
	return porttest.Stores{
		Users:        s,
		Mitras:       s,
		MitraQueries: s,
		Auth:         s,
		SessionStats: s,
		Truth:        s,
		Sessions:     s,
	}
}

func TestStore(t *testing.T) {
	porttest.RunStoreSuite(t, newStores)
}

func TestPing(t *testing.T) {
	if err := NewStore().Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
