-- +goose Up
CREATE TABLE mitras (
    id                uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    is_active         boolean     NOT NULL DEFAULT true,
    is_online         boolean     NOT NULL DEFAULT false,
    capacity          integer     NOT NULL CHECK (capacity >= 0),
    last_heartbeat_at timestamptz NULL,
    online_since      timestamptz NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The reachable scan: active, online mitras by heartbeat freshness.
CREATE INDEX mitras_reachable_idx ON mitras (last_heartbeat_at) WHERE is_online AND is_active;
-- The dashboard's deactivated count.
CREATE INDEX mitras_deactivated_idx ON mitras (is_active) WHERE NOT is_active;

-- +goose Down
DROP TABLE mitras;
