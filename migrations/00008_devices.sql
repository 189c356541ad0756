-- +goose Up
-- The one device each user receives push notifications on (docs/contract.md §12).
-- A token belongs to at most one user: the store deletes it from any other
-- user when it is registered, and the unique index (over md5, since a token
-- may be longer than a btree entry allows) makes that hold under concurrency.
CREATE TABLE devices (
    user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    platform   text        NOT NULL CHECK (platform IN ('fcm')),
    token      text        NOT NULL CHECK (char_length(token) BETWEEN 1 AND 4096),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX devices_token_md5_idx ON devices (md5(token));

-- +goose Down
DROP TABLE devices;
