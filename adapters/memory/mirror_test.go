package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/mirrortest"
	"github.com/halobestie/mitra-availability/ports/queuemirrortest"
)

func TestMirror(t *testing.T) {
	mirrortest.Run(t, func(t *testing.T) mirrortest.Subject {
		m := memory.NewMirror()
		return mirrortest.Subject{Mirror: m, Flush: func(*testing.T) { m.Flush() }}
	})
}

func TestMirrorRejectsBadTTL(t *testing.T) {
	m := memory.NewMirror()
	ctx := context.Background()
	if err := m.SaveSnapshot(ctx, ports.Snapshot{AsOf: time.Now()}, 0); err == nil {
		t.Error("SaveSnapshot with ttl 0: no error")
	}
	if _, ok, err := m.TryLock(ctx, "x", 0); err == nil || ok {
		t.Errorf("TryLock with ttl 0 = ok %v, %v; want an error", ok, err)
	}
}

func TestMirrorClampsLoad(t *testing.T) {
	m := memory.NewMirror()
	ctx := context.Background()
	if _, err := m.Reseed(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := m.PutOnline(ctx, ports.MirrorMitra{ID: "a", LastHeartbeat: at, OpenSessions: -3, Capacity: 500}); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mitra.OpenSessions != 0 || st.Mitra.Capacity != 127 {
		t.Errorf("Status = %+v, want open 0 and capacity clamped to 127", st.Mitra)
	}
}

func TestQueueMirror(t *testing.T) {
	queuemirrortest.Run(t, func(t *testing.T) queuemirrortest.Subject {
		q := memory.NewQueueMirror()
		return queuemirrortest.Subject{Mirror: q, Flush: func(*testing.T) { q.Flush() }}
	})
}
