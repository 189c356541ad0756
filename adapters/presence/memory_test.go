package presence_test

import (
	"testing"

	"github.com/halobestie/mitra-availability/adapters/presence"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/presencetest"
)

func TestMemoryContract(t *testing.T) {
	presencetest.Run(t, func(*testing.T) func() ports.Presence {
		p := presence.NewMemory() // one process: every instance is the same
		return func() ports.Presence { return p }
	})
}
