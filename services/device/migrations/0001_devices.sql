CREATE TABLE devices (
    id          uuid PRIMARY KEY,
    space_id    uuid        NOT NULL,
    -- The space's home (the space itself for a home): whose members see the device.
    home_id     uuid        NOT NULL,
    type        text        NOT NULL CHECK (type IN ('HEATER', 'SENSOR', 'CONTROLLER')),
    name        text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('ONLINE', 'OFFLINE', 'ERROR')),
    last_seen   timestamptz,
    -- HMAC-SHA256 of the device's secret under a key outside the database.
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- Retired devices stay (their log is kept) but are gone for every API.
    retired_at  timestamptz
);
CREATE INDEX devices_live_by_home ON devices (home_id, created_at, id) WHERE retired_at IS NULL;
CREATE INDEX devices_live_by_space ON devices (space_id, created_at, id) WHERE retired_at IS NULL;

CREATE TABLE device_logs (
    id        uuid PRIMARY KEY,
    device_id uuid        NOT NULL REFERENCES devices (id),
    kind      text        NOT NULL CHECK (kind IN (
        'STATUS_CHANGED', 'COMMAND_UPDATED', 'READING_RECORDED', 'ALARM_RAISED', 'DEVICE_CHANGED'
    )),
    event     text        NOT NULL,
    -- A serialized warmhouse.device.v1.Reading, for readings and alarms.
    reading   bytea,
    timestamp timestamptz NOT NULL
);
CREATE INDEX device_logs_newest ON device_logs (device_id, timestamp DESC, id DESC);
CREATE INDEX device_logs_newest_by_kind ON device_logs (device_id, kind, timestamp DESC, id DESC);

-- A copy of Space's data, fed by its events and by GetSpaceAccess answers.
CREATE TABLE known_spaces (
    space_id uuid PRIMARY KEY,
    home_id  uuid    NOT NULL,
    deleted  boolean NOT NULL DEFAULT false
);

CREATE TABLE memberships (
    home_id   uuid   NOT NULL,
    user_id   uuid   NOT NULL,
    -- NULL: the membership ended (a tombstone, so a late event cannot revive it).
    role      text   CHECK (role IN ('OWNER', 'MAINTAINER', 'GUEST')),
    expire_at timestamptz,
    -- The home's membership version this row reflects; older news is ignored.
    version   bigint NOT NULL,
    PRIMARY KEY (home_id, user_id)
);
