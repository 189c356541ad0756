package porttest

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/halobestie/mitra-availability/ports"
)

// RunDeviceStoreSuite checks ports.DeviceStore: one device per user, the last
// registration wins, a token belongs to one user at most, and an unregistered
// token is dropped only while it is still the user's.
func RunDeviceStoreSuite(t *testing.T, f Factory) {
	parallel(t, "PutAndRead", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		long := strings.Repeat("é", ports.MaxDeviceTokenLen) // 4096 characters, 8192 bytes
		got := putDevice(t, st, u.ID, long)
		if got.UserID != u.ID || got.Platform != ports.PlatformFCM || got.Token != long {
			t.Errorf("PutDevice = %+v, want user %s, fcm, the token", got, u.ID)
		}
		assertStoreTime(t, "UpdatedAt", got.UpdatedAt)
		ds := devices(t, st, u.ID)
		if len(ds) != 1 || ds[u.ID] != got {
			t.Errorf("Devices = %+v, want {%s: %+v}", ds, u.ID, got)
		}
	})
	parallel(t, "LastOneWins", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		putDevice(t, st, u.ID, "first")
		second := putDevice(t, st, u.ID, "second")
		if ds := devices(t, st, u.ID); ds[u.ID] != second {
			t.Errorf("Devices = %+v, want the second registration", ds)
		}
		// Registering the same token again is no change but a fresh time.
		again := putDevice(t, st, u.ID, "second")
		if again.Token != "second" || again.UpdatedAt.Before(second.UpdatedAt) {
			t.Errorf("PutDevice again = %+v, want token second, not older than %v", again, second.UpdatedAt)
		}
	})
	parallel(t, "UnknownUser", f, func(t *testing.T, st Stores) {
		for _, id := range []string{randomUUID(t), "not-a-uuid"} {
			_, err := st.Devices.PutDevice(t.Context(), ports.Device{UserID: id, Platform: ports.PlatformFCM, Token: "t"})
			if !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("PutDevice(user %q) = %v, want ErrNotFound", id, err)
			}
		}
	})
	parallel(t, "TokenMovesToNewUser", f, func(t *testing.T, st Stores) {
		a, b := newCustomer(t, st), newMitra(t, st, 1)
		putDevice(t, st, a.ID, "shared-phone")
		putDevice(t, st, b.ID, "shared-phone")
		ds := devices(t, st, a.ID, b.ID)
		if _, ok := ds[a.ID]; ok || ds[b.ID].Token != "shared-phone" || len(ds) != 1 {
			t.Errorf("Devices = %+v, want only %s's (the token moved to the last user)", ds, b.ID)
		}
	})
	parallel(t, "Delete", f, func(t *testing.T, st Stores) {
		a, b := newCustomer(t, st), newCustomer(t, st)
		putDevice(t, st, a.ID, "token-a")
		putDevice(t, st, b.ID, "token-b")
		if err := st.Devices.DeleteDevice(t.Context(), a.ID); err != nil {
			t.Fatalf("DeleteDevice: %v", err)
		}
		ds := devices(t, st, a.ID, b.ID)
		if _, ok := ds[a.ID]; ok || ds[b.ID].Token != "token-b" {
			t.Errorf("Devices after deleting a's = %+v, want only b's", ds)
		}
		for _, id := range []string{a.ID, randomUUID(t), "not-a-uuid"} {
			if err := st.Devices.DeleteDevice(t.Context(), id); err != nil {
				t.Errorf("DeleteDevice(%q) with no device = %v, want nil", id, err)
			}
		}
	})
	parallel(t, "DevicesOfSeveral", f, func(t *testing.T, st Stores) {
		a, b, c := newCustomer(t, st), newMitra(t, st, 1), newCustomer(t, st)
		putDevice(t, st, a.ID, "token-a")
		putDevice(t, st, b.ID, "token-b")
		ds := devices(t, st, a.ID, b.ID, c.ID, randomUUID(t), "not-a-uuid", a.ID)
		if len(ds) != 2 || ds[a.ID].Token != "token-a" || ds[b.ID].Token != "token-b" {
			t.Errorf("Devices = %+v, want a's and b's", ds)
		}
		for _, ids := range [][]string{nil, {}} {
			ds, err := st.Devices.Devices(t.Context(), ids)
			if err != nil || ds == nil || len(ds) != 0 {
				t.Errorf("Devices(%v) = %v, %v; want an empty map", ids, ds, err)
			}
		}
	})
	parallel(t, "DropDeviceToken", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		putDevice(t, st, u.ID, "old")
		putDevice(t, st, u.ID, "new")
		// The push service reports the old token unregistered: the newer registration stays.
		if dropped, err := st.Devices.DropDeviceToken(t.Context(), u.ID, "old"); err != nil || dropped {
			t.Errorf("DropDeviceToken(old) = %v, %v; want false, nil", dropped, err)
		}
		if ds := devices(t, st, u.ID); ds[u.ID].Token != "new" {
			t.Fatalf("Devices = %+v, want the new token kept", ds)
		}
		if dropped, err := st.Devices.DropDeviceToken(t.Context(), u.ID, "new"); err != nil || !dropped {
			t.Errorf("DropDeviceToken(new) = %v, %v; want true, nil", dropped, err)
		}
		if ds := devices(t, st, u.ID); len(ds) != 0 {
			t.Errorf("Devices after the drop = %+v, want none", ds)
		}
		if dropped, err := st.Devices.DropDeviceToken(t.Context(), "not-a-uuid", "new"); err != nil || dropped {
			t.Errorf("DropDeviceToken(malformed id) = %v, %v; want false, nil", dropped, err)
		}
	})
	parallel(t, "ConcurrentSameToken", f, func(t *testing.T, st Stores) {
		const n = 10
		users := make([]string, n)
		for i := range users {
			users[i] = newCustomer(t, st).ID
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, id := range users {
			wg.Go(func() {
				_, errs[i] = st.Devices.PutDevice(t.Context(), ports.Device{UserID: id, Platform: ports.PlatformFCM, Token: "contested"})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("PutDevice %d: %v", i, err)
			}
		}
		if ds := devices(t, st, users...); len(ds) != 1 {
			t.Errorf("%d users hold the contested token, want 1: %+v", len(ds), ds)
		}
	})
}

func putDevice(t *testing.T, st Stores, userID, token string) ports.Device {
	t.Helper()
	d, err := st.Devices.PutDevice(t.Context(), ports.Device{UserID: userID, Platform: ports.PlatformFCM, Token: token})
	if err != nil {
		t.Fatalf("PutDevice(%s): %v", userID, err)
	}
	return d
}

func devices(t *testing.T, st Stores, userIDs ...string) map[string]ports.Device {
	t.Helper()
	ds, err := st.Devices.Devices(t.Context(), userIDs)
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	return ds
}
