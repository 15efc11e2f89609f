-- A heating device's desired and reported state (heating.proto). A device
-- without a row runs the defaults (version 1); its first change, report or
-- push writes the row.
CREATE TABLE heating (
    device_id            uuid PRIMARY KEY REFERENCES devices (id),
    -- A serialized HeatingPlan; its version is the column.
    desired              bytea       NOT NULL,
    desired_version      bigint      NOT NULL CHECK (desired_version > 0),
    desired_at           timestamptz NOT NULL,
    desired_by           uuid,
    -- The last accepted report: a serialized HeatingStatus, NULL until the first.
    reported             bytea,
    reported_version     bigint      NOT NULL DEFAULT 0,
    -- When its stream opened, and when the adapter received it: a report
    -- earlier by (stream, arrival) loses.
    reported_stream_at   timestamptz,
    reported_at          timestamptz,
    -- The plan version the device says it runs.
    applied_version      bigint      NOT NULL DEFAULT 0,
    -- What was last written to which stream, and when.
    pushed_version       bigint      NOT NULL DEFAULT 0,
    pushed_connection_id text,
    pushed_at            timestamptz,
    -- Desired changes in the current minute (a per-device limit).
    changes_window_start timestamptz,
    changes_in_window    integer     NOT NULL DEFAULT 0,
    -- When an open window was last logged, and whether the one open now was
    -- (its closing is logged then): a device flipping it cannot flood the log.
    window_logged_at     timestamptz,
    window_open_logged   boolean     NOT NULL DEFAULT false
);

ALTER TABLE device_logs DROP CONSTRAINT device_logs_kind_check;
ALTER TABLE device_logs ADD CONSTRAINT device_logs_kind_check CHECK (kind IN (
    'STATUS_CHANGED', 'COMMAND_UPDATED', 'READING_RECORDED', 'ALARM_RAISED', 'DEVICE_CHANGED',
    'ALARM_CLEARED', 'HEATING_CHANGED'
));
