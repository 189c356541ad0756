package memory

import (
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
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
		Devices:      s,
		Events:       s,
		QueueTruth:   s,
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

// An online mitra with no heartbeat (possible in the schema, not through the
// ports) is in the mirror truth with a zero LastHeartbeat, and stale.
func TestMirrorTruthNullHeartbeat(t *testing.T) {
	s := NewStore()
	m, err := s.CreateMitra(t.Context(), ports.NewUser{Phone: "+6203", DisplayName: "M", PasswordHash: "h"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	row := s.mitras[m.ID]
	row.isOnline = true
	s.mitras[m.ID] = row
	s.mu.Unlock()
	online, _, err := s.MirrorTruth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(online) != 1 || online[0] != (ports.MirrorMitra{ID: m.ID, Capacity: 2}) {
		t.Errorf("MirrorTruth online = %+v, want [{ID: %s Capacity: 2}]", online, m.ID)
	}
	got, err := s.SetOfflineIfStale(t.Context(), []string{m.ID}, time.Now())
	if err != nil || len(got) != 1 || got[0] != m.ID {
		t.Errorf("SetOfflineIfStale = %v, %v; want [%s]", got, err, m.ID)
	}
}
