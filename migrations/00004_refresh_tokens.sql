-- +goose Up
-- Refresh tokens are stored only as hashes. Every token ever issued for an auth
-- session stays here with rotated_at set once it was exchanged, so a replayed
-- token is recognised as reuse.
CREATE TABLE refresh_tokens (
    token_hash      bytea       PRIMARY KEY,
    auth_session_id uuid        NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    rotated_at      timestamptz NULL
);

CREATE INDEX refresh_tokens_auth_session_id_idx ON refresh_tokens (auth_session_id);

-- +goose Down
DROP TABLE refresh_tokens;
