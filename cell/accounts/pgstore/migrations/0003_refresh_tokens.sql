-- Refresh tokens. Portable SQL, like 0001.
--
-- Only the SHA-256 digest of a token is stored. Every token rotated from one
-- login shares a family_id: presenting a used token revokes the whole family
-- (reuse means two parties hold it). Rows are player-owned and, like
-- identities, carry the player's home_cell so that they are REGIONAL BY ROW
-- in production and move with the player.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT        PRIMARY KEY,
    family_id  TEXT        NOT NULL,
    player_id  TEXT        NOT NULL REFERENCES players (id),
    home_cell  TEXT        NOT NULL,
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ NULL,
    revoked_at TIMESTAMPTZ NULL
);

CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_player_idx ON refresh_tokens (player_id);
