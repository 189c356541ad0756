package ports

import (
	"context"
	"time"
)

// PlatformFCM is the only device platform: Firebase Cloud Messaging, which
// reaches Android and (through APNs) iOS apps.
const PlatformFCM = "fcm"

// MaxDeviceTokenLen is the longest device token accepted, in characters.
const MaxDeviceTokenLen = 4096

// Device is the one device a user receives push notifications on.
type Device struct {
	UserID    string
	Platform  string // PlatformFCM
	Token     string // the push service's registration token
	UpdatedAt time.Time
}

// DeviceStore keeps each user's device (docs/contract.md §12). A token belongs to at
// most one user: registering it for a user removes it from any other, so a
// phone handed from one account to another never receives the first
// account's notifications.
type DeviceStore interface {
	// PutDevice makes d its user's device, replacing any previous one, and
	// removes d.Token from every other user. ErrNotFound when the user does
	// not exist. The store stamps UpdatedAt.
	PutDevice(ctx context.Context, d Device) (Device, error)
	// DeleteDevice removes userID's device; a user without one is no error.
	DeleteDevice(ctx context.Context, userID string) error
	// Devices returns the devices of those of userIDs that have one, by user ID.
	Devices(ctx context.Context, userIDs []string) (map[string]Device, error)
	// DropDeviceToken removes userID's device only if its token is still token
	// (the push service reported that token unregistered; a newer registration
	// stays). It reports whether it removed a device.
	DropDeviceToken(ctx context.Context, userID, token string) (bool, error)
}
