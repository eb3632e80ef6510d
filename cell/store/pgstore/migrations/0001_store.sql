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
