-- +goose Up
-- queue_update (docs/contract.md §10): the queue position last sent to the
-- customer of a queued session, and when, so that every instance's notice
-- pass sends a change once, at most once a second per session. A position
-- of 0 was the "left the queue" notice (queue_position null).
ALTER TABLE chat_sessions
    ADD COLUMN queue_notified_position integer     NULL,
    ADD COLUMN queue_notified_at       timestamptz NULL;

-- The dispatched queued sessions whose customer was last told a position:
-- each is owed the notice that it left the queue.
CREATE INDEX chat_sessions_queue_offered_notice_idx ON chat_sessions (queue_priority DESC, queued_at, queue_seq)
    WHERE status = 'searching' AND queue_seq IS NOT NULL AND queue_matched_at IS NULL
        AND offer_expires_at IS NOT NULL AND queue_notified_position > 0;

-- +goose Down
DROP INDEX chat_sessions_queue_offered_notice_idx;
ALTER TABLE chat_sessions DROP COLUMN queue_notified_at, DROP COLUMN queue_notified_position;
