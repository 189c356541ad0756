package push

import (
	"context"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/ports"
)

// Devices registers and removes users' devices.
type Devices struct {
	store ports.DeviceStore
}

// NewDevices returns the device service over store.
func NewDevices(store ports.DeviceStore) (*Devices, error) {
	if store == nil {
		return nil, errors.New("push: device store is nil")
	}
	return &Devices{store: store}, nil
}

// Register makes (platform, token) userID's device, replacing any other
// (one device per user; the last one wins). Bad input is a
// *core.ValidationError naming the field, and nothing is stored.
func (d *Devices) Register(ctx context.Context, userID, platform, token string) error {
	if platform != ports.PlatformFCM {
		return core.Invalid("platform", fmt.Sprintf("must be %q", ports.PlatformFCM))
	}
	if err := checkToken(token); err != nil {
		return err
	}
	if _, err := d.store.PutDevice(ctx, ports.Device{UserID: userID, Platform: platform, Token: token}); err != nil {
		return fmt.Errorf("registering a device: %w", err)
	}
	return nil
}

// Unregister removes userID's device; having none is no error.
func (d *Devices) Unregister(ctx context.Context, userID string) error {
	if err := d.store.DeleteDevice(ctx, userID); err != nil {
		return fmt.Errorf("removing a device: %w", err)
	}
	return nil
}

// checkToken: 1 to 4096 characters, none of them a control character (push
// services issue printable tokens; a NUL could not even be stored).
func checkToken(token string) error {
	n := utf8.RuneCountInString(token)
	if n < 1 || n > ports.MaxDeviceTokenLen {
		return core.Invalid("token", fmt.Sprintf("must be 1 to %d characters", ports.MaxDeviceTokenLen))
	}
	for _, r := range token {
		if unicode.IsControl(r) {
			return core.Invalid("token", "must not contain control characters")
		}
	}
	return nil
}
