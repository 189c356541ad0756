-- +goose Up
-- The event log (docs/contract.md §13): every realtime event, once per recipient, in
-- the transaction of the state change that causes it. Each user's events are
-- numbered 1, 2, 3, … without gaps: event_heads holds the newest number,
-- locked by the writing transaction until it commits, so the numbers commit
-- in order and a reader never sees a later event before an earlier one.
CREATE TABLE event_heads (
    user_id  uuid   PRIMARY KEY,
    last_seq bigint NOT NULL CHECK (last_seq > 0)
);

CREATE TABLE events (
    user_id uuid        NOT NULL,
    seq     bigint      NOT NULL,
    type    text        NOT NULL,
    at      timestamptz NOT NULL,
    -- The JSON object sent, byte for byte (jsonb would reorder its keys).
    payload text        NOT NULL,
    PRIMARY KEY (user_id, seq)
);

-- The retention prune deletes the oldest events.
CREATE INDEX events_at_idx ON events (at);

-- +goose Down
DROP TABLE events;
DROP TABLE event_heads;
