-- When the device's secret last changed: a stream opened before that was
-- opened with the old secret and must end.
ALTER TABLE devices ADD COLUMN secret_rotated_at timestamptz;
