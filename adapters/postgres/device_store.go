package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

var _ ports.DeviceStore = (*Store)(nil)

// deviceRow is a row of devices.
type deviceRow struct {
	bun.BaseModel `bun:"table:devices"`

	UserID    string    `bun:"user_id"`
	Platform  string    `bun:"platform"`
	Token     string    `bun:"token"`
	UpdatedAt time.Time `bun:"updated_at"`
}

const deviceColumns = `user_id, platform, token, updated_at`

// deviceTokenLockSpace is the first key of the advisory transaction locks
// PutDevice takes on tokens (the second is the token's hash), apart from any
// other advisory lock of the database.
const deviceTokenLockSpace = 0x64657631 // "dev1"

func toPortsDevice(r deviceRow) ports.Device {
	return ports.Device{UserID: r.UserID, Platform: r.Platform, Token: r.Token, UpdatedAt: utc(r.UpdatedAt)}
}

// PutDevice implements ports.DeviceStore. In one transaction it takes a
// transaction lock on the token (so that registrations of one token take
// turns), deletes the token from any other user, then upserts the user's row.
func (s *Store) PutDevice(ctx context.Context, d ports.Device) (ports.Device, error) {
	key, ok := parseID(d.UserID)
	if !ok {
		return ports.Device{}, fmt.Errorf("postgres: put device of user %q: %w", d.UserID, ports.ErrNotFound)
	}
	var row deviceRow
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewRaw(`SELECT pg_advisory_xact_lock(?0, hashtext(?1))`, deviceTokenLockSpace, d.Token).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewRaw(`DELETE FROM devices WHERE md5(token) = md5(?0) AND user_id <> ?1`, d.Token, key).Exec(ctx); err != nil {
			return err
		}
		return tx.NewRaw(`
			INSERT INTO devices (user_id, platform, token, updated_at) VALUES (?0, ?1, ?2, now())
			ON CONFLICT (user_id) DO UPDATE
				SET platform = EXCLUDED.platform, token = EXCLUDED.token, updated_at = EXCLUDED.updated_at
			RETURNING `+deviceColumns,
			key, d.Platform, d.Token,
		).Scan(ctx, &row)
	})
	if err != nil {
		if isForeignKeyViolation(err) {
			return ports.Device{}, fmt.Errorf("postgres: put device: user %s: %w: %w", key, ports.ErrNotFound, err)
		}
		return ports.Device{}, fmt.Errorf("postgres: put device of user %s: %w", key, translate(err))
	}
	return toPortsDevice(row), nil
}

// DeleteDevice implements ports.DeviceStore.
func (s *Store) DeleteDevice(ctx context.Context, userID string) error {
	key, ok := parseID(userID)
	if !ok {
		return nil
	}
	if _, err := s.db.NewRaw(`DELETE FROM devices WHERE user_id = ?`, key).Exec(ctx); err != nil {
		return fmt.Errorf("postgres: delete device of user %s: %w", key, translate(err))
	}
	return nil
}

// Devices implements ports.DeviceStore with one statement.
func (s *Store) Devices(ctx context.Context, userIDs []string) (map[string]ports.Device, error) {
	keys := parseIDs(userIDs)
	out := make(map[string]ports.Device)
	if len(keys) == 0 {
		return out, nil
	}
	var rows []deviceRow
	err := s.db.NewRaw(`SELECT `+deviceColumns+` FROM devices WHERE user_id = ANY(?::uuid[])`, pgdialect.Array(keys)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: devices: %w", translate(err))
	}
	for _, r := range rows {
		out[r.UserID] = toPortsDevice(r)
	}
	return out, nil
}

// DropDeviceToken implements ports.DeviceStore.
func (s *Store) DropDeviceToken(ctx context.Context, userID, token string) (bool, error) {
	key, ok := parseID(userID)
	if !ok {
		return false, nil
	}
	res, err := s.db.NewRaw(`DELETE FROM devices WHERE user_id = ? AND token = ?`, key, token).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: drop device token of user %s: %w", key, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("postgres: drop device token of user %s: %w", key, translate(err))
	}
	return n > 0, nil
}
