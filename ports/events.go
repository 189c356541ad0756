package ports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event types sent to WebSocket clients (docs/contract.md §8).
const (
	EventSessionOffer   = "session_offer"
	EventSessionTaken   = "session_taken"
	EventSessionUpdate  = "session_update"
	EventSessionWarning = "session_warning"
	EventSessionEnded   = "session_ended"
	// EventQueueUpdate is docs/contract.md §10's: a queued session's new position.
	EventQueueUpdate = "queue_update"
)

// ErrEventsGone: the events after the id a client asked for are no longer
// in the log (older than the retention), or the id was never issued. The
// client reloads its state (docs/contract.md §13: 410 gone).
var ErrEventsGone = errors.New("events gone")

// Event is one realtime message for a set of users. Payload is the JSON
// object sent to each of them (it carries its own "type" field); the frame
// a client gets adds "event_id" and "at" to it (Frame).
//
// An event is written to the event log in the transaction of the state
// change that causes it (SessionTx.Emit), which gives it, for each of its
// users, the next id of that user's stream: Seqs[i] is the id for
// UserIDs[i]. Only then is it published on the bus.
type Event struct {
	Type    string          `json:"type"`
	UserIDs []string        `json:"user_ids"`
	Payload json.RawMessage `json:"payload"`
	At      time.Time       `json:"at"`
	Seqs    []int64         `json:"seqs,omitempty"`
}

// For returns the event as user i's stream holds it.
func (e Event) For(i int) LoggedEvent {
	return LoggedEvent{UserID: e.UserIDs[i], Seq: e.Seqs[i], Type: e.Type, At: e.At, Payload: e.Payload}
}

// Logged reports whether the log gave the event its ids.
func (e Event) Logged() bool { return len(e.Seqs) == len(e.UserIDs) && len(e.Seqs) > 0 }

// LoggedEvent is one event of one user's stream.
type LoggedEvent struct {
	UserID  string
	Seq     int64 // increasing in the user's stream, from 1, without gaps
	Type    string
	At      time.Time
	Payload json.RawMessage
}

// EventID is the event's id as clients see it.
func (e LoggedEvent) EventID() string { return strconv.FormatInt(e.Seq, 10) }

// Frame is what a client receives: the payload object with "event_id" and
// "at" (RFC 3339, UTC) first.
func (e LoggedEvent) Frame() []byte {
	body := bytes.TrimSpace(e.Payload)
	var b bytes.Buffer
	b.Grow(len(body) + 64)
	b.WriteString(`{"event_id":"`)
	b.WriteString(e.EventID())
	b.WriteString(`","at":"`)
	b.WriteString(e.At.UTC().Format(time.RFC3339Nano))
	b.WriteByte('"')
	if inner := bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimPrefix(body, []byte("{")), []byte("}"))); len(inner) > 0 {
		b.WriteByte(',')
		b.Write(inner)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// EventLog reads the users' event streams (docs/contract.md §13). The writes happen
// in the session transactions (SessionTx.Emit).
type EventLog interface {
	// EventsAfter returns up to limit events of userID's stream after the id
	// after, oldest first. ErrEventsGone when after > 0 and an event after
	// it was pruned, or when after is beyond the newest id. after 0 reads
	// from the oldest event kept and is never gone.
	EventsAfter(ctx context.Context, userID string, after int64, limit int) ([]LoggedEvent, error)
	// Heads returns the newest id of each user's stream that has one.
	Heads(ctx context.Context, userIDs []string) (map[string]int64, error)
	// EventsAfterEach reads, in one go, up to limit events of each user's
	// stream after the id after[user], oldest first; users with none are
	// left out. It never answers ErrEventsGone: a stream whose event after
	// the id was pruned simply starts later, which the caller sees as a gap.
	EventsAfterEach(ctx context.Context, after map[string]int64, limit int) (map[string][]LoggedEvent, error)
	// PruneEvents deletes up to limit events older than before and returns
	// how many it deleted. A stream's ids go on from where they were.
	PruneEvents(ctx context.Context, before time.Time, limit int) (int, error)
}

// EventSequencer is implemented by an event log that gives events their ids
// after the transition's commit rather than inside it (the Postgres store:
// a transition writes its events to an outbox; their ids are assigned right
// after the commit, before the transition returns). The ids of an event
// sequenced while its transition waits in this process reach the
// transition's caller (Event.Seqs), which publishes it; every other event it
// sequences (another instance's, or one left over by a failure) goes to the
// publisher.
type EventSequencer interface {
	// SetPublisher sets where the events nobody waits for are published.
	SetPublisher(publish func(ctx context.Context, e Event) error)
	// SequencePending gives their ids to the events still in the outbox.
	SequencePending(ctx context.Context) error
}

// EventBus carries events between instances: an event published on any
// instance reaches the subscribers of every instance, at most once. Delivery
// to clients reads the event log, so an event the bus loses is delivered
// from the log (late, never twice).
type EventBus interface {
	// Publish sends e to every instance's subscribers. It never waits for a
	// remote server: the local subscribers get e before it returns, the other
	// instances later.
	Publish(ctx context.Context, e Event) error
	// Subscribe registers handler for every event from every instance until the
	// returned function is called. Handlers must not block.
	Subscribe(handler func(Event)) (unsubscribe func())
}

// Recipients returns ids canonicalised by canon and deduped in order (a set,
// not a scan: a blast has a recipient per mitra); an id canon refuses is an
// error naming it.
func Recipients(ids []string, canon func(string) (string, bool)) ([]string, error) {
	out := make([]string, 0, len(ids))
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		key, ok := canon(id)
		if !ok {
			return nil, fmt.Errorf("event recipient %q is not a UUID", id)
		}
		if _, dup := seen[key]; !dup {
			seen[key] = struct{}{}
			out = append(out, key)
		}
	}
	return out, nil
}
