package sessions

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Router is a routing strategy (docs/contract.md §11): it says which
// available mitras one offer round needs, and orders what it gets. A
// strategy is one small policy behind this interface, in a file of its own:
// Blast (blast.go), LongestIdle (longest_idle.go), LeastLoaded
// (least_loaded.go).
//
// The lifecycle asks for the candidates with Read (the availability mirror
// answers an ordered or random top-limit without walking every online
// mitra; the store answers when the mirror cannot), never including a mitra
// the session excludes or was already offered, then offers the session to
// the first batch of Choose's answer. With a positive batch the search
// widens: another batch is added every Config.BatchInterval, and at once
// when every mitra of the latest batch declined, until one accepts or the
// pairing timeout.
type Router interface {
	// Read says which available mitras one round needs: up to limit of them
	// (0: every available mitra, in no particular order) in order.
	Read() (order ports.CandidateOrder, limit int)
	// Choose orders cands (the available mitras the round may offer to, a
	// set it may reorder) and returns their ids with the size of a batch:
	// the first batch is offered now. batch 0 offers every returned mitra
	// at once and never widens.
	Choose(cands []ports.Candidate) (ordered []string, batch int)
}

// DefaultBatchInterval is OFFER_BATCH_SECONDS's default.
const DefaultBatchInterval = 15 * time.Second

// round reads the candidates of one offer round, none of exclude, and
// returns the mitras to offer to now and whether the search widens in batches.
func (s *Service) round(ctx context.Context, exclude []string) ([]string, bool, error) {
	order, limit := s.cfg.Router.Read()
	var cands []ports.Candidate
	if limit <= 0 {
		ids, err := s.avail.AvailableMitras(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("finding available mitras: %w", err)
		}
		cands = make([]ports.Candidate, 0, len(ids))
		for _, id := range ids {
			if !slices.Contains(exclude, id) {
				cands = append(cands, ports.Candidate{ID: id})
			}
		}
	} else {
		var err error
		cands, err = s.avail.Candidates(ctx, order, limit, exclude)
		if err != nil {
			return nil, false, fmt.Errorf("finding available mitras (%s): %w", order, err)
		}
	}
	ordered, batch := s.cfg.Router.Choose(cands)
	if batch > 0 && len(ordered) > batch {
		ordered = ordered[:batch]
	}
	return ordered, batch > 0, nil
}

// startBatches schedules the next batch of a search offered in batches: in
// BatchInterval, but never after the pairing deadline.
func (s *Service) startBatches(x *ports.Session, now time.Time) {
	next := now.Add(s.cfg.BatchInterval)
	if x.OfferExpiresAt != nil && next.After(*x.OfferExpiresAt) {
		next = *x.OfferExpiresAt
	}
	x.NextBatchAt = &next
}

// batchDue reports whether x's next batch is due at now: x is still
// searching, in batches, and its pairing deadline has not passed (then the
// pairing timer ends it instead).
func batchDue(x *ports.Session, now time.Time) bool {
	return x.Status == ports.StatusSearching && x.NextBatchAt != nil && !x.NextBatchAt.After(now) &&
		x.OfferExpiresAt != nil && x.OfferExpiresAt.After(now)
}

// latestBatchDeclined reports whether every mitra of x's latest batch declined.
func latestBatchDeclined(x *ports.Session) bool {
	start := min(max(x.BatchStart, 0), len(x.OfferedMitraIDs))
	latest := x.OfferedMitraIDs[start:]
	if len(latest) == 0 {
		return false
	}
	for _, id := range latest {
		if !slices.Contains(x.ExcludedMitraIDs, id) {
			return false
		}
	}
	return true
}

// widen claims a due batch deadline and offers the session to the next
// batch: the candidates are read before the session's lock is taken, and the
// claim re-checks the deadline under it, so of several instances racing for
// one deadline exactly one adds the batch. The offers already made stand;
// session_offer goes to the new batch only. When nobody new is available the
// next attempt is one interval later.
func (s *Service) widen(ctx context.Context, d ports.DueTimer, now time.Time) (bool, error) {
	cur, err := s.store.Session(ctx, d.SessionID)
	if err != nil {
		return false, err
	}
	if !batchDue(&cur, now) {
		return false, errNotApplicable
	}
	exclude := append(slices.Clone(cur.OfferedMitraIDs), cur.ExcludedMitraIDs...)
	fresh, _, err := s.round(ctx, exclude)
	if err != nil {
		return false, err
	}
	var (
		out   outbox
		added []string
	)
	_, err = s.store.UpdateSession(ctx, d.SessionID, func(_ context.Context, tx ports.SessionTx, x *ports.Session) error {
		if !batchDue(x, now) {
			return errNotApplicable
		}
		added = slices.DeleteFunc(slices.Clone(fresh), func(id string) bool {
			return slices.Contains(x.OfferedMitraIDs, id) || slices.Contains(x.ExcludedMitraIDs, id)
		})
		if len(added) > 0 {
			x.BatchStart = len(x.OfferedMitraIDs)
			x.OfferedMitraIDs = append(x.OfferedMitraIDs, added...)
		}
		s.startBatches(x, now)
		return out.offerTo(tx, x, added, now)
	})
	if err != nil {
		return false, err
	}
	s.wake()
	s.deliver(ctx, &out)
	s.log.InfoContext(ctx, "offer batch added", "session_id", d.SessionID, "mitras", len(added))
	return true, nil
}
