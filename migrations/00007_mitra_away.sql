-- +goose Up
-- Away (docs/contract.md §12): online and heartbeating, but offered nothing new.
-- Only an online mitra is away; every write that takes a mitra offline clears it.
ALTER TABLE mitras ADD COLUMN is_away boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE mitras DROP COLUMN is_away;
