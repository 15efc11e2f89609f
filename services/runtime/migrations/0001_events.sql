-- Tables the shared runtime keeps in every service's database.

-- Transactional outbox: written in the same transaction as the state change,
-- published to JetStream afterwards by the relay.
CREATE TABLE outbox (
    event_id     uuid PRIMARY KEY,
    subject      text        NOT NULL,
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;

-- Events this service has consumed: a redelivery finds its id here and is
-- acknowledged without a second effect.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
