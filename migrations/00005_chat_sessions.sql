-- +goose Up
CREATE TABLE chat_sessions (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id        uuid        NOT NULL REFERENCES users (id),
    mitra_id           uuid        NULL REFERENCES mitras (id),
    status             text        NOT NULL CHECK (status IN (
                           'searching', 'pending_payment', 'active', 'ended', 'unmatched', 'cancelled')),
    end_reason         text        NULL CHECK (end_reason IN (
                           'unmatched', 'payment_timeout', 'cancelled_by_customer',
                           'ended_by_customer', 'ended_by_mitra', 'expired')),
    duration_minutes   integer     NOT NULL CHECK (duration_minutes BETWEEN 1 AND 240),
    paid               boolean     NOT NULL DEFAULT false,
    -- Time left on a paid session that was rerouted to another mitra.
    remaining_seconds  integer     NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    searching_since    timestamptz NOT NULL,
    -- Pairing deadline of the current search.
    offer_expires_at   timestamptz NULL,
    payment_due_at     timestamptz NULL,
    accepted_at        timestamptz NULL,
    started_at         timestamptz NULL,
    expires_at         timestamptz NULL,
    warn_at            timestamptz NULL,
    warning_sent_at    timestamptz NULL,
    ended_at           timestamptz NULL,
    offered_mitra_ids  uuid[]      NOT NULL DEFAULT '{}',
    excluded_mitra_ids uuid[]      NOT NULL DEFAULT '{}',
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Session history of a customer and of a mitra, newest first.
CREATE INDEX chat_sessions_customer_created_idx ON chat_sessions (customer_id, created_at DESC);
CREATE INDEX chat_sessions_mitra_created_idx ON chat_sessions (mitra_id, created_at DESC);

-- A customer has at most one open session.
CREATE UNIQUE INDEX chat_sessions_one_open_per_customer_idx ON chat_sessions (customer_id)
    WHERE status IN ('searching', 'pending_payment', 'active');

-- A mitra's active_sessions (capacity) count.
CREATE INDEX chat_sessions_mitra_open_idx ON chat_sessions (mitra_id)
    WHERE status IN ('pending_payment', 'active');

-- Timer scans.
CREATE INDEX chat_sessions_offer_expires_idx ON chat_sessions (offer_expires_at)
    WHERE status = 'searching';
CREATE INDEX chat_sessions_payment_due_idx ON chat_sessions (payment_due_at)
    WHERE status = 'pending_payment';
CREATE INDEX chat_sessions_expires_idx ON chat_sessions (expires_at)
    WHERE status = 'active';
CREATE INDEX chat_sessions_warn_idx ON chat_sessions (warn_at)
    WHERE status = 'active' AND warning_sent_at IS NULL;

-- Which sessions were offered to a mitra.
CREATE INDEX chat_sessions_offered_mitra_ids_idx ON chat_sessions USING gin (offered_mitra_ids);

-- +goose Down
DROP TABLE chat_sessions;
