-- The transactional outbox: events written in the same transaction as the
-- state change they announce, deleted by the relay once the broker has
-- confirmed them. Portable SQL (PostgreSQL and CockroachDB).
--
-- Rows are about one player and carry the player's home cell, so in
-- production the table is REGIONAL BY ROW (the overlay generated from
-- cells.yaml adds the region column): an event is written in the region of
-- the transaction that writes the player's other rows.
--
-- seq orders events for the relay; leased_until is when a relay's claim on
-- the row expires (the epoch: unclaimed).
CREATE TABLE IF NOT EXISTS event_outbox (
    id           TEXT        PRIMARY KEY,
    seq          BIGINT      NOT NULL,
    type         TEXT        NOT NULL,
    player_id    TEXT        NOT NULL,
    home_cell    TEXT        NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    payload      TEXT        NOT NULL, -- the JSON bytes as produced
    leased_until TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00'
);

-- Each cell's relay claims its own players' events, oldest first.
CREATE INDEX IF NOT EXISTS event_outbox_cell_seq_idx ON event_outbox (home_cell, seq);
