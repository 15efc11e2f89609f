-- Telemetry: each device's latest sample, its history (raw and per hour), and
-- its alarms. Written by the TelemetryBatch consumer (telemetry.py).

ALTER TABLE devices
    -- The newest sample, a serialized warmhouse.device.v1.Reading, and its time:
    -- a batch that arrives late does not replace a newer one.
    ADD COLUMN last_reading    bytea,
    ADD COLUMN last_reading_at timestamptz;

-- Raw samples, kept WARMHOUSE_DEVICE_RAW_READINGS_DAYS. No key and no foreign
-- key: rows are only ever appended and pruned by age (devices are never
-- deleted), and a check per row would slow the hottest insert there is.
CREATE TABLE readings (
    device_id   uuid        NOT NULL,
    sample_time timestamptz NOT NULL,
    temperature double precision,
    power       double precision,
    heater_on   boolean,
    gas_alarm   boolean
);
CREATE INDEX readings_by_device ON readings (device_id, sample_time);
-- Rows arrive roughly in time order: a block range index finds the old ones to
-- prune for next to nothing.
CREATE INDEX readings_age ON readings USING brin (sample_time);

-- Per device and hour (UTC), the sums the hour's samples add up to, kept
-- WARMHOUSE_DEVICE_HOURLY_READINGS_DAYS. A field's count is of the samples that
-- carried it; gas_alarm_any is NULL when none did.
CREATE TABLE reading_hours (
    device_id         uuid             NOT NULL,
    hour              timestamptz      NOT NULL,
    sample_count      bigint           NOT NULL,
    temperature_count bigint           NOT NULL,
    temperature_sum   double precision NOT NULL,
    temperature_min   double precision,
    temperature_max   double precision,
    power_count       bigint           NOT NULL,
    power_sum         double precision NOT NULL,
    heater_count      bigint           NOT NULL,
    heater_on_count   bigint           NOT NULL,
    gas_alarm_any     boolean,
    PRIMARY KEY (device_id, hour)
);
CREATE INDEX reading_hours_age ON reading_hours (hour);

-- A row while a hazard's episode lasts: raised once, cleared once.
CREATE TABLE device_alarms (
    device_id uuid        NOT NULL REFERENCES devices (id),
    hazard    text        NOT NULL CHECK (hazard IN ('OVERHEATING', 'GAS_LEAK')),
    raised_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, hazard)
);
