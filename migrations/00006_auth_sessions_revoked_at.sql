-- +goose Up
-- Every instance asks which auth sessions were revoked lately (their access
-- tokens stop working at once, docs/contract.md §13) while the cache is down.
CREATE INDEX auth_sessions_revoked_at_idx ON auth_sessions (revoked_at)
    WHERE revoked_at IS NOT NULL;

-- +goose Down
DROP INDEX auth_sessions_revoked_at_idx;
