-- A copy of Space's and Device's data, fed by their events: which homes,
-- rooms and devices exist, their names, and who belongs to which home.

CREATE TABLE directory_spaces (
    space_id   uuid PRIMARY KEY,
    -- The space itself for a home.
    home_id    uuid        NOT NULL,
    name       text        NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    -- The newest event applied to the name: an older rename changes nothing.
    renamed_at timestamptz NOT NULL
);

CREATE TABLE directory_members (
    home_id   uuid        NOT NULL,
    user_id   uuid        NOT NULL,
    -- NULL: the membership ended (a tombstone, so a late event cannot revive it).
    role      text        CHECK (role IN ('OWNER', 'MAINTAINER', 'GUEST')),
    expire_at timestamptz,
    joined_at timestamptz NOT NULL,
    -- The home's membership version this row reflects; older news is ignored.
    version   bigint      NOT NULL,
    PRIMARY KEY (home_id, user_id)
);

CREATE TABLE directory_devices (
    device_id  uuid PRIMARY KEY,
    space_id   uuid        NOT NULL,
    name       text        NOT NULL,
    retired    boolean     NOT NULL DEFAULT false,
    -- The newest event applied: a late rename or move changes nothing.
    changed_at timestamptz NOT NULL
);
