package porttest

import (
	"testing"

	"github.com/halobestie/mitra-availability/ports"
)

// RunSessionStatsSuite checks a ports.SessionStats.
func RunSessionStatsSuite(t *testing.T, f Factory) {
	parallel(t, "Empty", f, func(t *testing.T, st Stores) {
		got, err := st.SessionStats.CountOpenSessions(t.Context())
		if err != nil || got != (ports.SessionCounts{}) {
			t.Errorf("CountOpenSessions on an empty store = %+v, %v", got, err)
		}
	})

	parallel(t, "CountsOpenStatuses", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 5)
		seedSession(t, st, "", "searching")
		seedSession(t, st, "", "searching")
		seedSession(t, st, m.ID, "pending_payment")
		seedSession(t, st, m.ID, "active")
		seedSession(t, st, m.ID, "active")
		seedSession(t, st, m.ID, "active")
		seedSession(t, st, m.ID, "ended")
		seedSession(t, st, "", "unmatched")
		seedSession(t, st, m.ID, "cancelled")
		got, err := st.SessionStats.CountOpenSessions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (ports.SessionCounts{Searching: 2, PendingPayment: 1, Active: 3}); got != want {
			t.Errorf("CountOpenSessions = %+v, want %+v", got, want)
		}
	})
}
