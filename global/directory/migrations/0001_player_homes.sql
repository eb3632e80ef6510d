-- The player -> home-cell directory. Base schema accepted by PostgreSQL and
-- CockroachDB alike; in production the CockroachDB overlay makes the table
-- LOCALITY GLOBAL (see directory.CockroachOverlay).
CREATE TABLE IF NOT EXISTS player_homes (
    player_id  TEXT        PRIMARY KEY,
    cell_id    TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- CountByCell groups by cell; placement asks for it on every new player.
CREATE INDEX IF NOT EXISTS player_homes_cell_id_idx ON player_homes (cell_id);
