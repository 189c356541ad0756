-- +goose Up
-- The waiting queue (docs/contract.md §10). A session requested with queue:
-- true has a queue entry: its key (queue_priority descending, queued_at,
-- queue_seq) orders the queue, queue_expires_at is its queue timeout, and
-- queue_matched_at is set when a mitra accepts it (the entry is history from
-- then on). It waits while it is searching, unmatched and no offer stands
-- (offer_expires_at is null).
CREATE SEQUENCE chat_sessions_queue_seq;

ALTER TABLE chat_sessions
    ADD COLUMN queue_priority   integer     NULL,
    ADD COLUMN queued_at        timestamptz NULL,
    ADD COLUMN queue_seq        bigint      NULL,
    ADD COLUMN queue_expires_at timestamptz NULL,
    ADD COLUMN queue_matched_at timestamptz NULL,
    ADD CONSTRAINT chat_sessions_queue_entry_check CHECK (
        (queued_at IS NULL) = (queue_seq IS NULL)
        AND (queued_at IS NULL) = (queue_priority IS NULL)
        AND (queued_at IS NULL) = (queue_expires_at IS NULL)
        AND (queued_at IS NOT NULL OR queue_matched_at IS NULL));

-- The queue in its order: the dispatcher reads its head, a position counts
-- the entries before a key.
CREATE INDEX chat_sessions_waiting_idx ON chat_sessions (queue_priority DESC, queued_at, queue_seq)
    WHERE status = 'searching' AND queue_seq IS NOT NULL AND queue_matched_at IS NULL
        AND offer_expires_at IS NULL;

-- The queue timeout scan.
CREATE INDEX chat_sessions_queue_expires_idx ON chat_sessions (queue_expires_at)
    WHERE status = 'searching' AND queue_seq IS NOT NULL AND queue_matched_at IS NULL
        AND offer_expires_at IS NULL;

-- The match rate behind the estimated wait.
CREATE INDEX chat_sessions_queue_matched_idx ON chat_sessions (queue_matched_at)
    WHERE queue_matched_at IS NOT NULL;

-- +goose Down
DROP INDEX chat_sessions_queue_matched_idx;
DROP INDEX chat_sessions_queue_expires_idx;
DROP INDEX chat_sessions_waiting_idx;
ALTER TABLE chat_sessions
    DROP CONSTRAINT chat_sessions_queue_entry_check,
    DROP COLUMN queue_matched_at,
    DROP COLUMN queue_expires_at,
    DROP COLUMN queue_seq,
    DROP COLUMN queued_at,
    DROP COLUMN queue_priority;
DROP SEQUENCE chat_sessions_queue_seq;
