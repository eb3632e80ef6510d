-- Platform accounts (Steam, Epic) linked to players. Portable SQL, like
-- 0001: PostgreSQL and CockroachDB both accept it.
--
-- (provider, subject) names one platform account, which belongs to at most
-- one player: the primary key is what refuses a second owner. A player has
-- at most one account per provider (unlinking is by provider), which the
-- unique index enforces; it also serves every lookup by player_id, so no
-- separate player_id index is needed.
--
-- home_cell is copied from the player so that, in production, this is a
-- REGIONAL BY ROW table whose rows live in the player's region and move with
-- the player when they are rehomed (the overlay generated from cells.yaml
-- adds the region column and the LOCALITY clause).
CREATE TABLE IF NOT EXISTS identities (
    provider     TEXT        NOT NULL,
    subject      TEXT        NOT NULL,
    player_id    TEXT        NOT NULL REFERENCES players (id),
    home_cell    TEXT        NOT NULL,
    display_name TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT identities_pkey PRIMARY KEY (provider, subject)
);

CREATE UNIQUE INDEX IF NOT EXISTS identities_player_provider_key ON identities (player_id, provider);
