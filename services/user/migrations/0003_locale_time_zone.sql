-- The language a user is written to in, and the IANA time zone their quiet
-- hours and digest follow (the service checks the zone name against the
-- zone database; the length bound is the longest name with room to spare).
ALTER TABLE users
    ADD COLUMN locale    text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'ru')),
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
        CHECK (char_length(time_zone) BETWEEN 1 AND 64);
