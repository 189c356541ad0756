-- +goose Up
CREATE TABLE auth_sessions (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NULL
);

CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);

-- +goose Down
DROP TABLE auth_sessions;
