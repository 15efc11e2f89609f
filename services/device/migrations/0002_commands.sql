-- The adapter stream a device holds, as the adapter's events tell it.
ALTER TABLE devices
    -- The stream the device holds now; NULL when it is known to have none.
    ADD COLUMN connection_id text,
    -- When that stream opened: a late event about an older stream loses.
    ADD COLUMN connected_at  timestamptz,
    -- The device counts as connected until then unless an adapter reports it
    -- again (a replica killed without a word stops reporting).
    ADD COLUMN lease_until   timestamptz;
CREATE INDEX devices_leased ON devices (lease_until) WHERE lease_until IS NOT NULL;

ALTER TABLE device_logs DROP CONSTRAINT device_logs_kind_check;
ALTER TABLE device_logs ADD CONSTRAINT device_logs_kind_check CHECK (kind IN (
    'STATUS_CHANGED', 'COMMAND_UPDATED', 'READING_RECORDED', 'ALARM_RAISED', 'DEVICE_CHANGED',
    'ALARM_CLEARED'
));

CREATE TABLE commands (
    id                 uuid PRIMARY KEY,
    device_id          uuid        NOT NULL REFERENCES devices (id),
    kind               text        NOT NULL
        CHECK (kind IN ('SET_TARGET_TEMPERATURE', 'TURN_ON', 'TURN_OFF')),
    target_temperature double precision,
    status             text        NOT NULL
        CHECK (status IN ('QUEUED', 'SENT', 'ACKNOWLEDGED', 'REJECTED', 'EXPIRED')),
    message            text        NOT NULL DEFAULT '',
    request_id         text        NOT NULL DEFAULT '',
    requester_id       uuid        NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    expire_at          timestamptz NOT NULL,
    -- The stream it was last written to: a newer stream gets it again.
    sent_connection_id text
);
-- Delivery order, and the listing (newest first).
CREATE INDEX commands_by_device ON commands (device_id, created_at, id);
CREATE INDEX commands_pending ON commands (device_id, created_at, id)
    WHERE status IN ('QUEUED', 'SENT');
CREATE INDEX commands_expiring ON commands (expire_at) WHERE status IN ('QUEUED', 'SENT');
