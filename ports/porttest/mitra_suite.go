package porttest

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

func ptr[T any](v T) *T { return &v }

// sameMitra compares two mitra views, all but UpdatedAt.
func sameMitra(t *testing.T, what string, got, want ports.Mitra) {
	t.Helper()
	if got.ID != want.ID || got.Phone != want.Phone || got.DisplayName != want.DisplayName ||
		got.IsActive != want.IsActive || got.IsOnline != want.IsOnline || got.IsAway != want.IsAway || got.Capacity != want.Capacity ||
		got.ActiveSessions != want.ActiveSessions || !got.CreatedAt.Equal(want.CreatedAt) ||
		(got.LastHeartbeatAt == nil) != (want.LastHeartbeatAt == nil) ||
		(got.LastHeartbeatAt != nil && !got.LastHeartbeatAt.Equal(*want.LastHeartbeatAt)) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// RunMitraStoreSuite checks a ports.MitraStore.
func RunMitraStoreSuite(t *testing.T, f Factory) {
	parallel(t, "CreateAndRead", f, func(t *testing.T, st Stores) {
		in := ports.NewUser{Role: ports.RoleCustomer, Phone: newPhone(), DisplayName: "Sari", PasswordHash: "h"}
		m, err := st.Mitras.CreateMitra(t.Context(), in, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !isUUID(m.ID) {
			t.Errorf("ID %q is not a canonical UUID", m.ID)
		}
		if m.Phone != in.Phone || m.DisplayName != in.DisplayName || !m.IsActive || m.IsOnline ||
			m.Capacity != 3 || m.ActiveSessions != 0 || m.LastHeartbeatAt != nil {
			t.Errorf("created %+v", m)
		}
		assertStoreTime(t, "CreatedAt", m.CreatedAt)
		assertStoreTime(t, "UpdatedAt", m.UpdatedAt)

		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "Mitra", got, m)

		// The account is a user with role mitra, whatever NewUser.Role said.
		u, err := st.Users.UserByID(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if u.Role != ports.RoleMitra || u.Phone != in.Phone || u.PasswordHash != in.PasswordHash {
			t.Errorf("mitra's user = %+v", u)
		}
	})

	parallel(t, "CapacityZeroAllowed", f, func(t *testing.T, st Stores) {
		if m := newMitra(t, st, 0); m.Capacity != 0 {
			t.Errorf("capacity = %d, want 0", m.Capacity)
		}
	})

	parallel(t, "CreateDuplicatePhone", f, func(t *testing.T, st Stores) {
		c := newCustomer(t, st)
		_, err := st.Mitras.CreateMitra(t.Context(), ports.NewUser{Role: ports.RoleMitra, Phone: c.Phone, DisplayName: "M", PasswordHash: "h"}, 1)
		if !errors.Is(err, ports.ErrPhoneTaken) {
			t.Fatalf("CreateMitra(customer's phone) = %v, want ErrPhoneTaken", err)
		}
		m := newMitra(t, st, 1)
		_, err = st.Mitras.CreateMitra(t.Context(), ports.NewUser{Role: ports.RoleMitra, Phone: m.Phone, DisplayName: "M", PasswordHash: "h"}, 1)
		if !errors.Is(err, ports.ErrPhoneTaken) {
			t.Fatalf("CreateMitra(mitra's phone) = %v, want ErrPhoneTaken", err)
		}
	})

	parallel(t, "CreateNegativeCapacityIsAtomic", f, func(t *testing.T, st Stores) {
		phone := newPhone()
		_, err := st.Mitras.CreateMitra(t.Context(), ports.NewUser{Role: ports.RoleMitra, Phone: phone, DisplayName: "M", PasswordHash: "h"}, -1)
		if err == nil || errors.Is(err, ports.ErrPhoneTaken) {
			t.Fatalf("CreateMitra(capacity -1) = %v, want a plain error", err)
		}
		if _, err := st.Users.UserByPhone(t.Context(), phone); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("a user was left behind by the failed CreateMitra: %v", err)
		}
	})

	parallel(t, "NotFound", f, func(t *testing.T, st Stores) {
		c := newCustomer(t, st)
		for _, id := range []string{randomUUID(t), "nope", c.ID} {
			if _, err := st.Mitras.Mitra(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("Mitra(%q) = %v, want ErrNotFound", id, err)
			}
			if _, err := st.Mitras.PatchMitra(t.Context(), id, ports.MitraPatch{Capacity: ptr(2)}); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("PatchMitra(%q) = %v, want ErrNotFound", id, err)
			}
			if _, err := st.Mitras.PatchMitra(t.Context(), id, ports.MitraPatch{}); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("PatchMitra(%q, empty) = %v, want ErrNotFound", id, err)
			}
			for _, online := range []bool{true, false} {
				if _, err := st.Mitras.SetOnline(t.Context(), id, online, t0); !errors.Is(err, ports.ErrNotFound) {
					t.Errorf("SetOnline(%q, %v) = %v, want ErrNotFound", id, online, err)
				}
			}
			if _, err := st.Mitras.TouchHeartbeat(t.Context(), id, t0); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("TouchHeartbeat(%q) = %v, want ErrNotFound", id, err)
			}
			if _, err := st.Mitras.MitraState(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("MitraState(%q) = %v, want ErrNotFound", id, err)
			}
			if _, err := st.Mitras.TouchHeartbeatState(t.Context(), id, t0); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("TouchHeartbeatState(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})

	parallel(t, "PatchCapacity", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		got, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{Capacity: ptr(5)})
		if err != nil {
			t.Fatal(err)
		}
		want := m
		want.Capacity = 5
		sameMitra(t, "patched", got, want)
		if got.UpdatedAt.Before(m.UpdatedAt) {
			t.Errorf("UpdatedAt went back: %v < %v", got.UpdatedAt, m.UpdatedAt)
		}
		reread, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "reread", reread, want)

		got, err = st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{Capacity: ptr(0)})
		if err != nil || got.Capacity != 0 || !got.IsOnline {
			t.Errorf("PatchMitra(capacity 0) = %+v, %v", got, err)
		}
	})

	parallel(t, "PatchNegativeCapacityRejected", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 2)
		if _, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{Capacity: ptr(-1), IsActive: ptr(false)}); err == nil {
			t.Fatal("PatchMitra(capacity -1) succeeded")
		}
		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "after the rejected patch", got, m)
	})

	parallel(t, "PatchEmptyChangesNothing", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 2, t0)
		got, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{})
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "PatchMitra(empty)", got, m)
	})

	parallel(t, "DeactivateForcesOffline", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		got, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{IsActive: ptr(false)})
		if err != nil {
			t.Fatal(err)
		}
		if got.IsActive || got.IsOnline || got.Capacity != 1 {
			t.Errorf("deactivated = %+v, want inactive and offline", got)
		}
		// Reactivating does not bring it back online.
		got, err = st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{IsActive: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsActive || got.IsOnline {
			t.Errorf("reactivated = %+v, want active and offline", got)
		}
		// Patching capacity and deactivating together.
		m2 := onlineMitra(t, st, 1, t0)
		got, err = st.Mitras.PatchMitra(t.Context(), m2.ID, ports.MitraPatch{IsActive: ptr(false), Capacity: ptr(4)})
		if err != nil {
			t.Fatal(err)
		}
		if got.IsActive || got.IsOnline || got.Capacity != 4 {
			t.Errorf("deactivated with capacity = %+v", got)
		}
		// Patching capacity of an active online mitra keeps it online.
		m3 := onlineMitra(t, st, 1, t0)
		got, err = st.Mitras.PatchMitra(t.Context(), m3.ID, ports.MitraPatch{IsActive: ptr(true), Capacity: ptr(2)})
		if err != nil || !got.IsOnline || !got.IsActive || got.Capacity != 2 {
			t.Errorf("PatchMitra(active, capacity 2) = %+v, %v", got, err)
		}
	})

	parallel(t, "SetOnlineRecordsHeartbeat", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 1)
		got, err := st.Mitras.SetOnline(t.Context(), m.ID, true, t0)
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsOnline || !got.IsActive {
			t.Errorf("after SetOnline(true) = %+v", got)
		}
		assertTimePtr(t, "LastHeartbeatAt", got.LastHeartbeatAt, t0)
		reread, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "reread", reread, got)
		assertTimePtr(t, "reread LastHeartbeatAt", reread.LastHeartbeatAt, t0)

		// Online again with an older time: the heartbeat does not go back.
		got, err = st.Mitras.SetOnline(t.Context(), m.ID, true, at(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt after an older SetOnline", got.LastHeartbeatAt, t0)
		// And with a newer one it moves forward.
		got, err = st.Mitras.SetOnline(t.Context(), m.ID, true, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt after a newer SetOnline", got.LastHeartbeatAt, at(time.Minute))
	})

	parallel(t, "SetOffline", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		got, err := st.Mitras.SetOnline(t.Context(), m.ID, false, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got.IsOnline || !got.IsActive {
			t.Errorf("after SetOnline(false) = %+v", got)
		}
		assertTimePtr(t, "LastHeartbeatAt kept", got.LastHeartbeatAt, t0)
		// Offline twice is fine.
		if got, err = st.Mitras.SetOnline(t.Context(), m.ID, false, at(2*time.Minute)); err != nil || got.IsOnline {
			t.Errorf("second SetOnline(false) = %+v, %v", got, err)
		}
		// A mitra that never went online.
		fresh := newMitra(t, st, 1)
		if got, err = st.Mitras.SetOnline(t.Context(), fresh.ID, false, t0); err != nil || got.IsOnline || got.LastHeartbeatAt != nil {
			t.Errorf("SetOnline(false) of a new mitra = %+v, %v", got, err)
		}
	})

	parallel(t, "DeactivatedCannotGoOnline", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 1)
		if _, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{IsActive: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		got, err := st.Mitras.SetOnline(t.Context(), m.ID, true, t0)
		if err != nil {
			t.Fatal(err)
		}
		if got.IsOnline || got.IsActive || got.LastHeartbeatAt != nil {
			t.Errorf("SetOnline(true) of a deactivated mitra = %+v, want it offline and untouched", got)
		}
	})

	parallel(t, "TouchHeartbeat", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		got, err := st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsOnline {
			t.Errorf("heartbeat took the mitra offline: %+v", got)
		}
		assertTimePtr(t, "LastHeartbeatAt", got.LastHeartbeatAt, at(30*time.Second))

		// Never backwards.
		got, err = st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt after an older heartbeat", got.LastHeartbeatAt, at(30*time.Second))
		reread, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "reread LastHeartbeatAt", reread.LastHeartbeatAt, at(30*time.Second))

		// The same time again is harmless.
		got, err = st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt after a repeated heartbeat", got.LastHeartbeatAt, at(30*time.Second))
	})

	parallel(t, "TouchHeartbeatOfflineDoesNothing", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		off, err := st.Mitras.SetOnline(t.Context(), m.ID, false, at(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "TouchHeartbeat of an offline mitra", got, off)
		assertTimePtr(t, "LastHeartbeatAt", got.LastHeartbeatAt, t0)

		never := newMitra(t, st, 1)
		got, err = st.Mitras.TouchHeartbeat(t.Context(), never.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "TouchHeartbeat of a never-online mitra", got, never)

		deact := onlineMitra(t, st, 1, t0)
		deactView, err := st.Mitras.PatchMitra(t.Context(), deact.ID, ports.MitraPatch{IsActive: ptr(false)})
		if err != nil {
			t.Fatal(err)
		}
		got, err = st.Mitras.TouchHeartbeat(t.Context(), deact.ID, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "TouchHeartbeat of a deactivated mitra", got, deactView)
	})

	parallel(t, "MitraStateAndTouchHeartbeatState", f, func(t *testing.T, st Stores) {
		state := func(m ports.Mitra) ports.MitraState {
			return ports.MitraState{IsActive: m.IsActive, IsOnline: m.IsOnline}
		}
		check := func(what, id string, want ports.Mitra) {
			t.Helper()
			got, err := st.Mitras.MitraState(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got != state(want) {
				t.Errorf("MitraState of %s = %+v, want %+v", what, got, state(want))
			}
		}
		on := onlineMitra(t, st, 1, t0)
		check("an online mitra", on.ID, on)
		got, err := st.Mitras.TouchHeartbeatState(t.Context(), on.ID, at(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if got != (ports.MitraState{IsActive: true, IsOnline: true}) {
			t.Errorf("TouchHeartbeatState of an online mitra = %+v, want active and online", got)
		}
		reread, err := st.Mitras.Mitra(t.Context(), on.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt after TouchHeartbeatState", reread.LastHeartbeatAt, at(30*time.Second))
		if _, err := st.Mitras.TouchHeartbeatState(t.Context(), on.ID, at(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		reread, err = st.Mitras.Mitra(t.Context(), on.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt after an older TouchHeartbeatState", reread.LastHeartbeatAt, at(30*time.Second))

		never := newMitra(t, st, 1)
		check("a never-online mitra", never.ID, never)
		got, err = st.Mitras.TouchHeartbeatState(t.Context(), never.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		if got != state(never) {
			t.Errorf("TouchHeartbeatState of a never-online mitra = %+v, want %+v", got, state(never))
		}
		reread, err = st.Mitras.Mitra(t.Context(), never.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "a never-online mitra after TouchHeartbeatState", reread, never)

		deact := onlineMitra(t, st, 1, t0)
		deactView, err := st.Mitras.PatchMitra(t.Context(), deact.ID, ports.MitraPatch{IsActive: ptr(false)})
		if err != nil {
			t.Fatal(err)
		}
		check("a deactivated mitra", deact.ID, deactView)
		got, err = st.Mitras.TouchHeartbeatState(t.Context(), deact.ID, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got != (ports.MitraState{}) {
			t.Errorf("TouchHeartbeatState of a deactivated mitra = %+v, want neither active nor online", got)
		}
		reread, err = st.Mitras.Mitra(t.Context(), deact.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "a deactivated mitra after TouchHeartbeatState", reread, deactView)
	})

	parallel(t, "ConcurrentHeartbeatsKeepTheLatest", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		const n = 20
		offsets := rand.Perm(n)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, off := range offsets {
			wg.Go(func() {
				_, errs[i] = st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(time.Duration(off+1)*time.Second))
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt", got.LastHeartbeatAt, at(n*time.Second))
	})

	parallel(t, "ReturnsCopies", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		*m.LastHeartbeatAt = at(time.Hour)
		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		*got.LastHeartbeatAt = at(2 * time.Hour)
		again, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "LastHeartbeatAt", again.LastHeartbeatAt, t0)
	})

	parallel(t, "ActiveSessions", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 3, t0)
		other := onlineMitra(t, st, 3, t0)
		seedSession(t, st, m.ID, "pending_payment")
		seedSession(t, st, m.ID, "active")
		seedSession(t, st, m.ID, "ended")
		seedSession(t, st, m.ID, "cancelled")
		seedSession(t, st, "", "searching")
		seedSession(t, st, other.ID, "active")

		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ActiveSessions != 2 {
			t.Errorf("ActiveSessions = %d, want 2 (pending_payment + active)", got.ActiveSessions)
		}
		// Every method's view carries the count.
		views := map[string]func() (ports.Mitra, error){
			"PatchMitra": func() (ports.Mitra, error) {
				return st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{Capacity: ptr(4)})
			},
			"TouchHeartbeat": func() (ports.Mitra, error) { return st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(time.Second)) },
			"SetOnline":      func() (ports.Mitra, error) { return st.Mitras.SetOnline(t.Context(), m.ID, false, at(time.Second)) },
		}
		for name, fn := range views {
			v, err := fn()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if v.ActiveSessions != 2 {
				t.Errorf("%s: ActiveSessions = %d, want 2", name, v.ActiveSessions)
			}
		}
		if got, err := st.Mitras.Mitra(t.Context(), other.ID); err != nil || got.ActiveSessions != 1 {
			t.Errorf("other mitra = %+v, %v; want ActiveSessions 1", got, err)
		}
	})
}
