package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// outbox collects the events of one transition. Each is emitted into the
// transition's transaction (ports.SessionTx.Emit), so it is logged if and
// only if the state change commits; once it has, deliver publishes them.
type outbox struct {
	events []*ports.Event
}

// emit adds an event of typ for the users to, with payload (which carries its
// own "type"), happening at.
func (o *outbox) emit(tx ports.SessionTx, typ string, to []string, at time.Time, payload any) error {
	if len(to) == 0 {
		return nil
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", typ, err)
	}
	e := &ports.Event{Type: typ, UserIDs: slices.Clone(to), Payload: body, At: at}
	tx.Emit(e)
	o.events = append(o.events, e)
	return nil
}

// offer emits session_offer to the mitras x is offered to.
func (o *outbox) offer(tx ports.SessionTx, x *ports.Session, at time.Time) error {
	return o.offerTo(tx, x, x.OfferedMitraIDs, at)
}

// offerTo emits session_offer of x to the mitras to (a new batch).
func (o *outbox) offerTo(tx ports.SessionTx, x *ports.Session, to []string, at time.Time) error {
	if x.OfferExpiresAt == nil {
		return nil
	}
	return o.emit(tx, ports.EventSessionOffer, to, at, map[string]any{
		"type": ports.EventSessionOffer, "session_id": x.ID, "duration_minutes": x.DurationMinutes,
		"offer_expires_at": x.OfferExpiresAt.UTC(),
	})
}

// update emits session_update with x's view to its customer, its mitra and
// any extra users.
func (o *outbox) update(tx ports.SessionTx, x *ports.Session, at time.Time, extra ...string) error {
	to := append([]string{x.CustomerID}, extra...)
	if x.MitraID != nil {
		to = append(to, *x.MitraID)
	}
	return o.emit(tx, ports.EventSessionUpdate, to, at, map[string]any{
		"type": ports.EventSessionUpdate, "session": ViewOf(*x, at),
	})
}

// ended emits session_ended to x's customer and mitra.
func (o *outbox) ended(tx ports.SessionTx, x *ports.Session, at time.Time) error {
	to := []string{x.CustomerID}
	if x.MitraID != nil {
		to = append(to, *x.MitraID)
	}
	reason := ""
	if x.EndReason != nil {
		reason = string(*x.EndReason)
	}
	return o.emit(tx, ports.EventSessionEnded, to, at, map[string]any{
		"type": ports.EventSessionEnded, "session_id": x.ID, "reason": reason,
	})
}

// warning emits session_warning to x's customer.
func (o *outbox) warning(tx ports.SessionTx, x *ports.Session, at time.Time) error {
	return o.emit(tx, ports.EventSessionWarning, []string{x.CustomerID}, at, map[string]any{
		"type": ports.EventSessionWarning, "session_id": x.ID, "kind": "three_minutes_left",
		"expires_at": x.ExpiresAt.UTC(),
	})
}

// deliver publishes the logged events of a committed transition on the bus
// (this instance's connections at once, the other instances in the
// background; the app's bus also hands each to push). It never waits on a
// remote server: a hung cache adds no latency to the transition. An event the bus
// loses still reaches every connection from the log.
func (s *Service) deliver(ctx context.Context, o *outbox) {
	ctx = context.WithoutCancel(ctx)
	for _, e := range o.events {
		if !e.Logged() {
			continue
		}
		if err := s.bus.Publish(ctx, *e); err != nil {
			s.log.WarnContext(ctx, "publishing event failed; connections read it from the log", "type", e.Type, "err", err)
		}
	}
}

// now is the clock's time truncated to the store's precision (microseconds),
// so that the views in the events equal the views of the stored session.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }
