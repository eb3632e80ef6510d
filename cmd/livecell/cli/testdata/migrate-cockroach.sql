-- livecell schema, CockroachDB dialect: database livecell, primary region europe-west1, regions europe-west1, us-east1.
-- Generated from cells.yaml and the component schemas by `livecell migrate --dialect cockroach --print`.
-- Apply with `livecell migrate --dialect cockroach --database URL`, which also records the migrations.

-- 1. The database and its regions.
CREATE DATABASE IF NOT EXISTS "livecell" PRIMARY REGION "europe-west1" REGIONS "europe-west1", "us-east1" SURVIVE ZONE FAILURE;
ALTER DATABASE "livecell" PRIMARY REGION "europe-west1";
ALTER DATABASE "livecell" ADD REGION IF NOT EXISTS "us-east1";
ALTER DATABASE "livecell" SURVIVE ZONE FAILURE;
SET database = "livecell";

-- 2. The migrations of every component, in order (the PostgreSQL dialect).

-- accounts/0001_players.sql
-- Players of the accounts service. Portable SQL: PostgreSQL and CockroachDB
-- both accept it. Usernames are stored lower-cased by the service, so the
-- plain UNIQUE constraint makes them unique case-insensitively.
--
-- In production this is a REGIONAL BY ROW table keyed by home_cell; the
-- region column and the LOCALITY clause belong to the CockroachDB-only
-- overlay generated from cells.yaml, because PostgreSQL rejects them.
CREATE TABLE IF NOT EXISTS players (
    id            TEXT        PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    home_cell     TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- accounts/0002_identities.sql
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

-- accounts/0003_refresh_tokens.sql
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

-- accounts/0004_refresh_tokens_no_player_fk.sql
-- Refresh tokens drop their foreign key to players.
--
-- Every sign-in stores a refresh token, so this is the accounts service's
-- hottest insert. The foreign key made each one take a KEY SHARE lock on
-- the player's row: a WAL-logged tuple lock (a MultiXact when the same
-- player signs in twice at once) on what is otherwise a read, costing about
-- a fifth of PostgreSQL's CPU per login (docs/benchmarks.md). The key
-- guarded nothing the statements do not already: every insert takes
-- player_id from a players row read in the same statement (sign-in, first
-- login, CreateRefreshToken) or from the token it rotates, and players are
-- never deleted. Whatever deletes players one day must delete their tokens
-- in the same transaction.
--
-- Portable SQL: PostgreSQL and CockroachDB both name the constraint
-- <table>_<column>_fkey and both accept DROP CONSTRAINT IF EXISTS.
ALTER TABLE refresh_tokens DROP CONSTRAINT IF EXISTS refresh_tokens_player_id_fkey;

-- directory/0001_player_homes.sql
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

-- directory/0002_overrides_moves_cell_states.sql
-- The exceptions to the player -> home mapping and the operator's cell
-- states. All three are GLOBAL in production (see directory.Schema): every
-- router and cell reads them, operators write them rarely.

-- The override table: a player pinned to a cell, or quarantined (refused,
-- or sent to a quarantine cell). Small by design: operators manage it.
CREATE TABLE IF NOT EXISTS player_overrides (
    player_id  TEXT        PRIMARY KEY,
    kind       TEXT        NOT NULL CHECK (kind IN ('pin', 'quarantine')),
    cell_id    TEXT        NOT NULL DEFAULT '',
    reason     TEXT        NOT NULL DEFAULT '',
    created_by TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Redirect markers: every rehome, in order. The old cell reads the moves
-- from (and to) itself and answers a moved player with a redirect instead of
-- serving them from stale credentials.
CREATE TABLE IF NOT EXISTS player_moves (
    seq        BIGINT      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    player_id  TEXT        NOT NULL,
    from_cell  TEXT        NOT NULL,
    to_cell    TEXT        NOT NULL,
    moved_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS player_moves_from_cell_idx ON player_moves (from_cell, seq);
CREATE INDEX IF NOT EXISTS player_moves_to_cell_idx ON player_moves (to_cell, seq);
CREATE INDEX IF NOT EXISTS player_moves_moved_at_idx ON player_moves (moved_at);

-- Operator-set cell states (a drain) that override cells.yaml's state, kept
-- here so that a control plane restart does not end a drain.
CREATE TABLE IF NOT EXISTS cell_states (
    cell_id           TEXT        PRIMARY KEY,
    state             TEXT        NOT NULL CHECK (state IN ('draining')),
    drain_batch       INTEGER     NOT NULL CHECK (drain_batch > 0),
    drain_interval_ms BIGINT      NOT NULL CHECK (drain_interval_ms > 0),
    reason            TEXT        NOT NULL DEFAULT '',
    created_by        TEXT        NOT NULL DEFAULT '',
    since             TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- catalog/0001_catalog.sql
-- The catalog: items, store offers and one version counter. Portable SQL
-- (PostgreSQL and CockroachDB). All three tables are GLOBAL in production
-- (the CockroachDB overlay generated from cells.yaml sets the locality):
-- every cell reads them locally, writes are rare.
--
-- Display metadata, bundle contents and prices are JSON: they are read and
-- written whole, never queried by their parts.
CREATE TABLE IF NOT EXISTS catalog_items (
    id             TEXT        PRIMARY KEY,
    kind           TEXT        NOT NULL,
    rarity         TEXT        NOT NULL,
    slot           TEXT        NOT NULL DEFAULT '',
    level_required INT         NOT NULL DEFAULT 0,
    display        JSONB       NOT NULL,
    contents       JSONB       NOT NULL DEFAULT '[]',
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS catalog_offers (
    id              TEXT        PRIMARY KEY,
    item_id         TEXT        NOT NULL REFERENCES catalog_items (id),
    quantity        INT         NOT NULL,
    prices          JSONB       NOT NULL,
    available_from  TIMESTAMPTZ NULL,
    available_until TIMESTAMPTZ NULL,
    title           TEXT        NOT NULL DEFAULT '',
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS catalog_offers_item_idx ON catalog_offers (item_id);

-- One row: the version clients cache by. Every write bumps it in the same
-- transaction, so a version names exactly one catalog.
CREATE TABLE IF NOT EXISTS catalog_version (
    id      INT    PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO catalog_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- inventory/0001_inventory.sql
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

-- store/0001_store.sql
-- Purchases and the Stripe events that changed them. Portable SQL
-- (PostgreSQL and CockroachDB). Both tables are player data carrying the
-- player's home cell: REGIONAL BY ROW in production (the overlay generated
-- from cells.yaml adds the region column and the locality).
CREATE TABLE IF NOT EXISTS store_purchases (
    id              TEXT        PRIMARY KEY,
    player_id       TEXT        NOT NULL,
    home_cell       TEXT        NOT NULL,
    offer_id        TEXT        NOT NULL,
    quantity        INT         NOT NULL CHECK (quantity > 0),
    currency        TEXT        NOT NULL,
    amount          BIGINT      NOT NULL CHECK (amount > 0),
    status          TEXT        NOT NULL,
    grants          TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    session_id      TEXT        NOT NULL DEFAULT '',
    checkout_url    TEXT        NOT NULL DEFAULT '',
    payment_intent  TEXT        NOT NULL DEFAULT '',
    test_mode       BOOL        NOT NULL DEFAULT false,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS store_purchases_player_idx ON store_purchases (player_id, created_at);
CREATE INDEX IF NOT EXISTS store_purchases_key_idx ON store_purchases (idempotency_key);
CREATE INDEX IF NOT EXISTS store_purchases_payment_intent_idx ON store_purchases (payment_intent);

-- Every Stripe event id the store acted on, recorded in the transaction
-- that acted: the primary key is what makes a redelivered, replayed or
-- concurrent duplicate change nothing.
CREATE TABLE IF NOT EXISTS store_webhook_events (
    event_id    TEXT        PRIMARY KEY,
    purchase_id TEXT        NOT NULL,
    player_id   TEXT        NOT NULL,
    home_cell   TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- events/0001_event_outbox.sql
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

-- 3. Table localities.
ALTER TABLE "players" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "players" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "identities" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "identities" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "refresh_tokens" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "refresh_tokens" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "player_homes" SET LOCALITY GLOBAL;
ALTER TABLE "player_overrides" SET LOCALITY GLOBAL;
ALTER TABLE "player_moves" SET LOCALITY GLOBAL;
ALTER TABLE "cell_states" SET LOCALITY GLOBAL;
ALTER TABLE "catalog_items" SET LOCALITY GLOBAL;
ALTER TABLE "catalog_offers" SET LOCALITY GLOBAL;
ALTER TABLE "catalog_version" SET LOCALITY GLOBAL;
ALTER TABLE "inventory_items" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "inventory_items" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "inventory_grants" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "inventory_grants" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "inventory_loadouts" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "inventory_loadouts" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "inventory_versions" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "inventory_versions" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "store_purchases" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "store_purchases" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "store_webhook_events" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "store_webhook_events" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
ALTER TABLE "event_outbox" ADD COLUMN IF NOT EXISTS "crdb_region_ec1bb720" crdb_internal_region NOT VISIBLE AS (CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'europe-west1' END) STORED NOT NULL;
ALTER TABLE "event_outbox" SET LOCALITY REGIONAL BY ROW AS "crdb_region_ec1bb720";
