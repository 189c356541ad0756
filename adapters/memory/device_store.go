package memory

import (
	"context"

	"github.com/halobestie/mitra-availability/ports"
)

// PutDevice implements ports.DeviceStore.
func (s *Store) PutDevice(_ context.Context, d ports.Device) (ports.Device, error) {
	key, ok := parseID(d.UserID)
	if !ok {
		return ports.Device{}, notFound("user", d.UserID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[key]; !ok {
		return ports.Device{}, notFound("user", d.UserID)
	}
	for userID, other := range s.devices {
		if other.Token == d.Token && userID != key {
			delete(s.devices, userID)
		}
	}
	d.UserID = key
	d.UpdatedAt = s.wallClock()
	s.devices[key] = d
	return d, nil
}

// DeleteDevice implements ports.DeviceStore.
func (s *Store) DeleteDevice(_ context.Context, userID string) error {
	key, ok := parseID(userID)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.devices, key)
	return nil
}

// Devices implements ports.DeviceStore.
func (s *Store) Devices(_ context.Context, userIDs []string) (map[string]ports.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ports.Device)
	for _, id := range userIDs {
		key, ok := parseID(id)
		if !ok {
			continue
		}
		if d, ok := s.devices[key]; ok {
			out[key] = d
		}
	}
	return out, nil
}

// DropDeviceToken implements ports.DeviceStore.
func (s *Store) DropDeviceToken(_ context.Context, userID, token string) (bool, error) {
	key, ok := parseID(userID)
	if !ok {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[key]; ok && d.Token == token {
		delete(s.devices, key)
		return true, nil
	}
	return false, nil
}
