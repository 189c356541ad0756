package ports

import (
	"cmp"
	"context"
	"strings"
	"time"
)

// MitraStore persists mitras and their availability state.
type MitraStore interface {
	// CreateMitra inserts a user with role mitra and its mitra row in one transaction;
	// ErrPhoneTaken when the phone is in use.
	CreateMitra(ctx context.Context, u NewUser, capacity int) (Mitra, error)
	// Mitra returns ErrNotFound when there is no such mitra.
	Mitra(ctx context.Context, id string) (Mitra, error)
	// PatchMitra applies the non-nil fields of p. Deactivating also sets
	// is_online false. It returns the mitra as it is after the change.
	PatchMitra(ctx context.Context, id string, p MitraPatch) (Mitra, error)
	// SetOnline sets is_online and clears is_away; going online also records
	// at as the heartbeat. It returns the mitra after the change.
	SetOnline(ctx context.Context, id string, online bool, at time.Time) (Mitra, error)
	// SetAway puts an active mitra online and away, recording at as the
	// heartbeat as SetOnline does. A deactivated mitra is returned unchanged.
	SetAway(ctx context.Context, id string, at time.Time) (Mitra, error)
	// TouchHeartbeat records a heartbeat at `at` for an online mitra, never moving
	// the timestamp backwards. It returns the mitra after the change.
	TouchHeartbeat(ctx context.Context, id string, at time.Time) (Mitra, error)
	// MitraState returns whether the mitra is active and online, read from
	// its own row alone (ErrNotFound when there is none): the cheap read of
	// the checks that need nothing more while the mirror is not trusted.
	MitraState(ctx context.Context, id string) (MitraState, error)
	// TouchHeartbeatState is TouchHeartbeat returning only the state after
	// the change, in one statement that reads nothing but the mitra's row.
	TouchHeartbeatState(ctx context.Context, id string, at time.Time) (MitraState, error)
}

// MitraState is the part of a mitra the deactivation and heartbeat checks read.
type MitraState struct {
	IsActive bool
	IsOnline bool
}

// MitraCounts are the dashboard's mitra figures.
type MitraCounts struct {
	Online      int // active and is_online (whether or not the heartbeat is fresh)
	Available   int // reachable, not away and below capacity
	Deactivated int // is_active false
}

// MitraQueries are the read-side questions the availability rules ask the store.
// A mitra is reachable when active, online and its last heartbeat is not before
// freshSince; available when reachable, not away and ActiveSessions < Capacity.
type MitraQueries interface {
	// AvailableMitras lists the available mitras, ordered by ID.
	AvailableMitras(ctx context.Context, freshSince time.Time) ([]Mitra, error)
	// CountMitras answers the dashboard's mitra counts.
	CountMitras(ctx context.Context, freshSince time.Time) (MitraCounts, error)
	// Candidates returns up to q.Limit available mitras (fresh since
	// q.FreshSince), none of q.Exclude, in q.Order (docs/contract.md §11).
	Candidates(ctx context.Context, q CandidateQuery) ([]Candidate, error)
}

// CandidateOrder is the order in which a routing strategy wants the
// available mitras.
type CandidateOrder int

const (
	// OrderRandom: a uniformly random sample.
	OrderRandom CandidateOrder = iota
	// OrderLongestIdle: IdleSince ascending (idle longest first), then ID.
	OrderLongestIdle
	// OrderLeastLoaded: OpenSessions ascending, then IdleSince ascending, then ID.
	OrderLeastLoaded
)

// String names the order as ROUTING_STRATEGY does.
func (o CandidateOrder) String() string {
	switch o {
	case OrderRandom:
		return "random"
	case OrderLongestIdle:
		return "longest_idle"
	case OrderLeastLoaded:
		return "least_loaded"
	}
	return "unknown"
}

// CandidateQuery asks for available mitras a session may be offered to.
type CandidateQuery struct {
	FreshSince time.Time
	Order      CandidateOrder
	Limit      int      // at most this many; must be positive
	Exclude    []string // never any of these (already offered, declined, rerouted away from)
}

// Candidate is an available mitra with what a routing strategy orders by.
// For OrderRandom a reader may leave IdleSince zero.
type Candidate struct {
	ID           string
	IdleSince    time.Time
	OpenSessions int
}

// Compare orders candidates by o (OrderRandom: by ID), for slices.SortFunc.
func (o CandidateOrder) Compare(a, b Candidate) int {
	if o == OrderLeastLoaded && a.OpenSessions != b.OpenSessions {
		return cmp.Compare(a.OpenSessions, b.OpenSessions)
	}
	if o != OrderRandom {
		if c := a.IdleSince.Compare(b.IdleSince); c != 0 {
			return c
		}
	}
	return strings.Compare(a.ID, b.ID)
}
