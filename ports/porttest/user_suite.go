package porttest

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/halobestie/mitra-availability/ports"
)

// RunUserStoreSuite checks a ports.UserStore.
func RunUserStoreSuite(t *testing.T, f Factory) {
	parallel(t, "CreateAndRead", f, func(t *testing.T, st Stores) {
		in := ports.NewUser{Role: ports.RoleCustomer, Phone: newPhone(), DisplayName: "Ayu", PasswordHash: "$2a$hash"}
		u, err := st.Users.CreateUser(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !isUUID(u.ID) {
			t.Errorf("ID %q is not a canonical UUID", u.ID)
		}
		if u.Role != in.Role || u.Phone != in.Phone || u.DisplayName != in.DisplayName || u.PasswordHash != in.PasswordHash {
			t.Errorf("created %+v from %+v", u, in)
		}
		assertStoreTime(t, "CreatedAt", u.CreatedAt)

		byID, err := st.Users.UserByID(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if byID != u {
			t.Errorf("UserByID = %+v, want %+v", byID, u)
		}
		byUpper, err := st.Users.UserByID(t.Context(), strings.ToUpper(u.ID))
		if err != nil || byUpper != u {
			t.Errorf("UserByID(upper case) = %+v, %v; want %+v", byUpper, err, u)
		}
		byPhone, err := st.Users.UserByPhone(t.Context(), in.Phone)
		if err != nil {
			t.Fatal(err)
		}
		if byPhone != u {
			t.Errorf("UserByPhone = %+v, want %+v", byPhone, u)
		}
	})

	// docs/contract.md §14, defence in depth: a string the store cannot hold is a
	// typed error naming the field, never a driver error, and nothing is stored.
	parallel(t, "UnstorableText", f, func(t *testing.T, st Stores) {
		expectInvalid := func(t *testing.T, err error, field string) {
			t.Helper()
			var ive *ports.InvalidValueError
			if !errors.As(err, &ive) || ive.Field != field {
				t.Fatalf("error = %v, want a *ports.InvalidValueError naming %s", err, field)
			}
		}
		phone := newPhone()
		cases := []struct {
			name  string
			user  ports.NewUser
			field string
		}{
			{"NUL in display_name", ports.NewUser{Role: ports.RoleCustomer, Phone: phone, DisplayName: "Ay\x00u", PasswordHash: "h"}, "display_name"},
			{"NUL in phone", ports.NewUser{Role: ports.RoleCustomer, Phone: phone + "\x00", DisplayName: "Ayu", PasswordHash: "h"}, "phone"},
			{"invalid UTF-8 in display_name", ports.NewUser{Role: ports.RoleCustomer, Phone: phone, DisplayName: "Ay\xffu", PasswordHash: "h"}, "display_name"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := st.Users.CreateUser(t.Context(), tc.user)
				expectInvalid(t, err, tc.field)
				_, err = st.Mitras.CreateMitra(t.Context(), tc.user, 1)
				expectInvalid(t, err, tc.field)
			})
		}
		_, err := st.Users.UserByPhone(t.Context(), phone+"\x00")
		expectInvalid(t, err, "phone")
		if _, err := st.Users.UserByPhone(t.Context(), phone); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("after refused creates, UserByPhone = %v, want ErrNotFound (nothing stored)", err)
		}
		// The store still works for a clean value.
		if _, err := st.Users.CreateUser(t.Context(), ports.NewUser{Role: ports.RoleCustomer, Phone: phone, DisplayName: "Ayu", PasswordHash: "h"}); err != nil {
			t.Fatalf("clean create after refusals: %v", err)
		}
	})

	parallel(t, "EveryRole", f, func(t *testing.T, st Stores) {
		ids := map[string]bool{}
		for _, role := range []ports.Role{ports.RoleCustomer, ports.RoleMitra, ports.RoleAdmin} {
			u, err := st.Users.CreateUser(t.Context(), ports.NewUser{Role: role, Phone: newPhone(), DisplayName: "x", PasswordHash: "h"})
			if err != nil {
				t.Fatalf("%s: %v", role, err)
			}
			if u.Role != role {
				t.Errorf("role = %q, want %q", u.Role, role)
			}
			if ids[u.ID] {
				t.Errorf("ID %s given twice", u.ID)
			}
			ids[u.ID] = true
		}
	})

	parallel(t, "UnknownRoleRejected", f, func(t *testing.T, st Stores) {
		phone := newPhone()
		_, err := st.Users.CreateUser(t.Context(), ports.NewUser{Role: "root", Phone: phone, DisplayName: "x", PasswordHash: "h"})
		if err == nil || errors.Is(err, ports.ErrPhoneTaken) || errors.Is(err, ports.ErrNotFound) {
			t.Fatalf("CreateUser(role root) = %v, want a plain error", err)
		}
		if _, err := st.Users.UserByPhone(t.Context(), phone); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("user stored despite the error: %v", err)
		}
	})

	parallel(t, "DuplicatePhone", f, func(t *testing.T, st Stores) {
		first := newCustomer(t, st)
		for _, role := range []ports.Role{ports.RoleCustomer, ports.RoleAdmin, ports.RoleMitra} {
			_, err := st.Users.CreateUser(t.Context(), ports.NewUser{Role: role, Phone: first.Phone, DisplayName: "Other", PasswordHash: "h2"})
			if !errors.Is(err, ports.ErrPhoneTaken) {
				t.Errorf("CreateUser(%s, same phone) = %v, want ErrPhoneTaken", role, err)
			}
		}
		got, err := st.Users.UserByPhone(t.Context(), first.Phone)
		if err != nil || got != first {
			t.Errorf("after the duplicates UserByPhone = %+v, %v; want %+v", got, err, first)
		}
	})

	parallel(t, "NotFound", f, func(t *testing.T, st Stores) {
		newCustomer(t, st)
		for _, id := range []string{randomUUID(t), "not-a-uuid", ""} {
			if _, err := st.Users.UserByID(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("UserByID(%q) = %v, want ErrNotFound", id, err)
			}
		}
		if _, err := st.Users.UserByPhone(t.Context(), newPhone()); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("UserByPhone(unknown) = %v, want ErrNotFound", err)
		}
	})

	parallel(t, "ConcurrentSamePhone", f, func(t *testing.T, st Stores) {
		const n = 20
		phone := newPhone()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = st.Users.CreateUser(t.Context(), ports.NewUser{Role: ports.RoleCustomer, Phone: phone, DisplayName: "x", PasswordHash: "h"})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ports.ErrPhoneTaken):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d creations succeeded, want exactly 1", won)
		}
	})
}
