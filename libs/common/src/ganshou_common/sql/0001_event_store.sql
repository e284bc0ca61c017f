-- The event store of one service: append-only events, the transactional outbox,
-- idempotent request records and consumer checkpoints.

CREATE TABLE events (
    position       bigserial   PRIMARY KEY,           -- global order of insertion (gaps possible)
    event_id       uuid        NOT NULL UNIQUE,
    stream_id      text        NOT NULL,
    stream_type    text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_type     text        NOT NULL,              -- protobuf full name
    payload        bytea       NOT NULL,
    community_id   text        NOT NULL DEFAULT '',
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    correlation_id text        NOT NULL DEFAULT '',
    causation_id   text        NOT NULL DEFAULT '',
    actor_subject  text        NOT NULL DEFAULT '',
    actor_role     text        NOT NULL DEFAULT '',
    -- Optimistic concurrency: two writers of the same version cannot both commit, so a
    -- stream's versions also commit in order.
    UNIQUE (stream_id, version)
);

-- Events awaiting publication. The relay deletes a row once Kafka has acknowledged it,
-- so a row that commits late (a smaller position committing after a larger one) is still
-- there the next time the relay looks: nothing is skipped, whatever the commit order.
CREATE TABLE outbox (
    position bigint PRIMARY KEY REFERENCES events (position)
);

CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ganshou_outbox', '');
    RETURN NULL;
END $$;

-- Wakes the relay at commit; it also polls, so a lost notification only delays.
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

CREATE TABLE requests (
    request_id  text        PRIMARY KEY,
    fingerprint text        NOT NULL,
    result      bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consumer_checkpoints (
    consumer  text   NOT NULL,
    stream_id text   NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (consumer, stream_id)
);
