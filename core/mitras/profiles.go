package mitras

import (
	"context"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// maxProfiles bounds the profile cache; past it the cache starts over (a
// cleared entry costs one store read on the mitra's next status request).
const maxProfiles = 1 << 18

// profile is what the mirror does not hold of a mitra and what never changes
// once the account exists: its phone and display name (no endpoint edits
// them).
type profile struct {
	phone, displayName string
	createdAt          time.Time
}

// profiles is this instance's copy of the mitras' profiles, filled by the
// store reads of GET /api/mitra/status so that the next ones are answered from
// the mirror alone.
type profiles struct {
	mu sync.RWMutex
	m  map[string]profile
}

func (p *profiles) get(id string) (profile, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	v, ok := p.m[id]
	return v, ok
}

func (p *profiles) put(m ports.Mitra) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxProfiles {
		p.m = make(map[string]profile)
	}
	p.m[m.ID] = profile{phone: m.Phone, displayName: m.DisplayName, createdAt: m.CreatedAt}
}

// statusFromMirror answers an online, active mitra's own view from the mirror
// and the profile cache, at no store statement; ok false sends the caller to
// the store (the mirror is not trusted or failed, the mitra is offline or
// deactivated there, or its profile is not cached yet).
func (s *Service) statusFromMirror(ctx context.Context, id string) (View, bool) {
	p, ok := s.profiles.get(id)
	if !ok || !s.useMirror(ctx, "mitra_status") {
		return View{}, false
	}
	st, err := s.mirror.Status(ctx, id)
	if err != nil {
		s.fallback(ctx, "mitra_status", err)
		return View{}, false
	}
	if !st.Online || st.Deactivated || st.Mitra.LastHeartbeat.IsZero() {
		return View{}, false
	}
	hb := st.Mitra.LastHeartbeat
	m := ports.Mitra{
		ID:              id,
		Phone:           p.phone,
		DisplayName:     p.displayName,
		IsActive:        true,
		IsOnline:        true,
		IsAway:          st.Mitra.Away,
		Capacity:        st.Mitra.Capacity,
		ActiveSessions:  st.Mitra.OpenSessions,
		LastHeartbeatAt: &hb,
		CreatedAt:       p.createdAt,
	}
	return viewOf(m, s.clock.Now(), s.cfg.HeartbeatStale), true
}
