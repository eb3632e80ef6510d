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
