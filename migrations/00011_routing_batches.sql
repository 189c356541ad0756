-- +goose Up
-- Routing in batches (docs/contract.md §11, longest_idle and least_loaded): when
-- the next batch of a search is due, and where its latest batch begins in
-- offered_mitra_ids. next_batch_at is a session deadline like the others
-- (the scheduler claims it under the row lock).
ALTER TABLE chat_sessions
    ADD COLUMN next_batch_at timestamptz NULL,
    ADD COLUMN batch_start   integer     NOT NULL DEFAULT 0 CHECK (batch_start >= 0);

CREATE INDEX chat_sessions_next_batch_idx ON chat_sessions (next_batch_at)
    WHERE status = 'searching' AND next_batch_at IS NOT NULL;

-- A mitra's idle time (since its last session ended) is derived from its
-- sessions: the latest ended_at of a mitra is one index probe.
CREATE INDEX chat_sessions_mitra_ended_idx ON chat_sessions (mitra_id, ended_at DESC)
    WHERE ended_at IS NOT NULL;

-- +goose Down
DROP INDEX chat_sessions_mitra_ended_idx;
DROP INDEX chat_sessions_next_batch_idx;
ALTER TABLE chat_sessions DROP COLUMN batch_start, DROP COLUMN next_batch_at;
