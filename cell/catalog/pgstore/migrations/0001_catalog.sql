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
