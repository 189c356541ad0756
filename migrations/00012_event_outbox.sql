-- +goose Up
-- The outbox of the event log (docs/contract.md §13). A session transition
-- writes each of its events here, once, with all its recipients, in its own
-- transaction; right after the commit the events are sequenced: one
-- transaction at a time (an advisory lock) moves them, oldest first, into
-- events with the next ids of each recipient's stream and deletes them here.
-- Transitions thus never wait on each other's streams (a blast names every
-- mitra), and a sequencing transaction serves many transitions at once.
--
-- A stream's newest id is now its newest event's; event_heads only keeps
-- the newest id of a stream whose events the pruner removed (it holds the
-- same advisory lock), so that the stream goes on from there. No
-- transition locks or writes it any more.
CREATE TABLE event_outbox (
    id       bigserial   PRIMARY KEY,
    type     text        NOT NULL,
    at       timestamptz NOT NULL,
    payload  text        NOT NULL,
    user_ids uuid[]      NOT NULL
);

-- +goose Down
DROP TABLE event_outbox;
