-- What the User service's events say about each person: where to reach them,
-- in which language and time zone. updated_at is the occur_time of the last
-- event applied: an older event arriving late changes nothing.
CREATE TABLE contacts (
    user_id     uuid PRIMARY KEY,
    email       text        NOT NULL DEFAULT '',
    phone       text        NOT NULL DEFAULT '',
    locale      text        NOT NULL DEFAULT '',
    time_zone   text        NOT NULL DEFAULT '',
    active      boolean     NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- A user's saved preferences; none saved: the defaults (preferences.py).
-- categories: {"BILLING": {"channels": ["EMAIL"], "digest": false}, ...};
-- a category missing from it gets no deliveries (except SAFETY, which is
-- refused without a channel).
CREATE TABLE preferences (
    user_id       uuid PRIMARY KEY,
    categories    jsonb       NOT NULL,
    -- Both '' (none) or both "HH:MM", different.
    quiet_start   text        NOT NULL DEFAULT '',
    quiet_end     text        NOT NULL DEFAULT '',
    -- '' means 08:00.
    digest_time   text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL
);

CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    user_id          uuid        NOT NULL,
    category         text        NOT NULL
        CHECK (category IN ('DEVICE_STATUS', 'SAFETY', 'BILLING', 'SUPPORT', 'ACCOUNT')),
    priority         text        NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'CRITICAL')),
    title            text        NOT NULL,
    body             text        NOT NULL,
    -- The event it was made from: one notification per event and recipient.
    source_event_id  text        NOT NULL,
    read_at          timestamptz,
    created_at       timestamptz NOT NULL,
    CONSTRAINT notifications_once_per_event UNIQUE (source_event_id, user_id)
);
-- A user's inbox, newest first (and its unread part).
CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_by_user ON notifications (user_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;

-- One per notification and channel, chosen when the notification is made.
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    notification_id  uuid        NOT NULL REFERENCES notifications (id),
    user_id          uuid        NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('EMAIL', 'SMS', 'PUSH')),
    status           text        NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    -- Goes within the user's daily digest for its channel.
    digest           boolean     NOT NULL DEFAULT false,
    -- Of a CRITICAL notification: claimed before anything else due.
    critical         boolean     NOT NULL DEFAULT false,
    -- Attempts started; counted when a dispatcher claims the delivery.
    attempts         integer     NOT NULL DEFAULT 0,
    -- PENDING: when it is due (at once, after a backoff, after quiet hours, at the digest time).
    next_attempt_at  timestamptz NOT NULL,
    -- A dispatcher's lease: nobody else takes it before then, and only the
    -- holder of claim_id records its outcome.
    claimed_until    timestamptz,
    claim_id         uuid,
    failure_reason   text        NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL,
    CONSTRAINT deliveries_once_per_channel UNIQUE (notification_id, channel)
);
-- The dispatcher's queue: what is waiting, CRITICAL first, then by when it
-- is due; the claim's ORDER BY exactly (repository.py), so it reads the
-- first due rows in order and stops, without sorting the whole queue.
CREATE INDEX deliveries_due ON deliveries (critical DESC, next_attempt_at)
    WHERE status = 'PENDING';
-- A user's digest for one channel, claimed together.
CREATE INDEX deliveries_digest_due ON deliveries (user_id, channel, next_attempt_at)
    WHERE status = 'PENDING' AND digest;

-- Dangerous-reading episodes per device and hazard: one alarm and one
-- all-clear per episode, whatever is redelivered or reordered.
CREATE TABLE hazard_episodes (
    device_id   uuid        NOT NULL,
    hazard      text        NOT NULL,
    -- Set while an episode is open (the Detected's occur_time).
    opened_at   timestamptz,
    -- The last all-clear's occur_time.
    cleared_at  timestamptz,
    PRIMARY KEY (device_id, hazard)
);
