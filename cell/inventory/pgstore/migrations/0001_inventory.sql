-- Inventories: owned items, the grants that gave them, loadouts and a
-- version per player. Portable SQL (PostgreSQL and CockroachDB). Every row
-- belongs to one player and carries the player's home cell, so in
-- production all four tables are REGIONAL BY ROW and move with the player
-- when rehomed (the overlay generated from cells.yaml adds the region
-- column and the locality).

-- What a player owns. quantity counts the grants behind it.
CREATE TABLE IF NOT EXISTS inventory_items (
    player_id   TEXT        NOT NULL,
    item_id     TEXT        NOT NULL,
    home_cell   TEXT        NOT NULL,
    quantity    INT         NOT NULL CHECK (quantity > 0),
    acquired_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (player_id, item_id)
);

-- One row per fulfillment, keyed by purchase id: the primary key is what
-- makes a grant apply at most once however often its event is delivered.
-- A revoke that arrives first inserts a revoked row with no items (a
-- tombstone), so the late grant finds its id taken and does nothing.
CREATE TABLE IF NOT EXISTS inventory_grants (
    grant_id   TEXT        PRIMARY KEY,
    player_id  TEXT        NOT NULL,
    home_cell  TEXT        NOT NULL,
    items      TEXT        NOT NULL,
    revoked    BOOL        NOT NULL DEFAULT false,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ NULL
);

CREATE INDEX IF NOT EXISTS inventory_grants_player_idx ON inventory_grants (player_id);

-- The item worn in each slot; only owned items (the store checks it in the
-- transaction that equips, and a revoke deletes the rows of what it takes).
CREATE TABLE IF NOT EXISTS inventory_loadouts (
    player_id TEXT NOT NULL,
    slot      TEXT NOT NULL,
    item_id   TEXT NOT NULL,
    home_cell TEXT NOT NULL,
    PRIMARY KEY (player_id, slot)
);

CREATE TABLE IF NOT EXISTS inventory_versions (
    player_id TEXT   PRIMARY KEY,
    home_cell TEXT   NOT NULL,
    version   BIGINT NOT NULL
);
