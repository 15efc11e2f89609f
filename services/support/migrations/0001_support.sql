CREATE TABLE tickets (
    id                     uuid PRIMARY KEY,
    -- The user the ticket is about (its author): the person support answers.
    user_id                uuid        NOT NULL,
    subject                text        NOT NULL,
    description            text        NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('OPEN', 'IN_PROGRESS', 'RESOLVED', 'CLOSED')),
    priority               text        NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'HIGH', 'URGENT')),
    space_id               uuid,
    device_id              uuid,
    -- created_at + the priority's deadline.
    first_response_due_at  timestamptz NOT NULL,
    -- Support's first non-internal answer; NULL until then.
    first_response_at      timestamptz,
    -- Set once (TicketSlaBreached published once): the answer came, or is still missing, late.
    sla_breached           boolean     NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
-- A user's tickets and everyone's, newest first (status and priority filter these).
CREATE INDEX tickets_by_user ON tickets (user_id, created_at DESC, id DESC);
CREATE INDEX tickets_listing ON tickets (created_at DESC, id DESC);
CREATE INDEX tickets_by_status ON tickets (status, created_at DESC, id DESC);
-- The SLA sweep: tickets waiting for support's first answer, not yet breached.
CREATE INDEX tickets_awaiting_answer ON tickets (first_response_due_at)
    WHERE status IN ('OPEN', 'IN_PROGRESS') AND first_response_at IS NULL AND NOT sla_breached;

CREATE TABLE comments (
    id          uuid PRIMARY KEY,
    ticket_id   uuid        NOT NULL REFERENCES tickets (id),
    -- NULL: written by the platform itself.
    author_id   uuid,
    message     text        NOT NULL,
    -- A note among support staff, never shown to the ticket's user.
    internal    boolean     NOT NULL,
    created_at  timestamptz NOT NULL
);
-- A ticket's conversation, oldest first.
CREATE INDEX comments_by_ticket ON comments (ticket_id, created_at, id);

-- Dangerous-reading episodes of a device (Device's DangerousReadingDetected
-- until its DangerousReadingCleared): one ticket per episode.
CREATE TABLE hazard_episodes (
    id           uuid PRIMARY KEY,
    device_id    uuid        NOT NULL,
    hazard       text        NOT NULL CHECK (hazard IN ('GAS_LEAK', 'OVERHEATING')),
    -- The URGENT ticket the detection opened; NULL for a clearance seen
    -- without its detection (kept so that an older detection is ignored).
    ticket_id    uuid REFERENCES tickets (id),
    detected_at  timestamptz,
    cleared_at   timestamptz,
    CHECK (detected_at IS NOT NULL OR cleared_at IS NOT NULL)
);
-- At most one open episode per device and hazard.
CREATE UNIQUE INDEX hazard_episodes_one_open ON hazard_episodes (device_id, hazard)
    WHERE cleared_at IS NULL;
CREATE INDEX hazard_episodes_cleared ON hazard_episodes (device_id, hazard, cleared_at DESC);
