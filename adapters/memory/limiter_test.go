package memory_test

import (
	"testing"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/limitertest"
)

func TestLimiter(t *testing.T) {
	limitertest.Run(t, func(*testing.T) ports.Limiter { return memory.NewLimiter() })
}
