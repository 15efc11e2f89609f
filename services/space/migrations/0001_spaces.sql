-- A space with parent_id NULL is a home; with it set, a room of that home (one level only).
CREATE TABLE spaces (
    id                 uuid PRIMARY KEY,
    name               text        NOT NULL,
    -- The home's primary OWNER; NULL for rooms (they report their home's) and
    -- for a home whose last OWNER was deactivated.
    owner_id           uuid,
    -- A home's: whom it was created for (they, or an ADMIN for them). Counts
    -- against that person's quota whoever owns it later.
    created_for        uuid,
    parent_id          uuid REFERENCES spaces (id),
    -- Taken by every change of a home's members, in commit order (see events).
    membership_version bigint      NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX spaces_created_for ON spaces (created_for) WHERE created_for IS NOT NULL;
CREATE INDEX spaces_by_parent ON spaces (parent_id, created_at, id);
-- A home and its rooms, found from the home (listings by member or owner).
CREATE INDEX spaces_by_home ON spaces ((COALESCE(parent_id, id)));
-- An administrator's listing of every space.
CREATE INDEX spaces_listing ON spaces (created_at, id);

-- Members are held on homes only; a room's members are its home's.
CREATE TABLE space_users (
    id         uuid PRIMARY KEY,
    space_id   uuid        NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('OWNER', 'MAINTAINER', 'GUEST')),
    -- GUEST only: the membership ends at this instant.
    expire_at  timestamptz CHECK (expire_at IS NULL OR role = 'GUEST'),
    created_at timestamptz NOT NULL,
    CONSTRAINT space_users_member_key UNIQUE (space_id, user_id)
);
CREATE INDEX space_users_by_user ON space_users (user_id);
-- A home's members page by page.
CREATE INDEX space_users_in_order ON space_users (space_id, created_at, id);
CREATE INDEX space_users_expiry ON space_users (expire_at) WHERE expire_at IS NOT NULL;

-- Whether each account the User service told us about is active, as of its
-- latest event (events of different kinds may arrive out of order): a
-- deactivated account is never added again while it stays deactivated.
CREATE TABLE account_states (
    user_id    uuid PRIMARY KEY,
    is_active  boolean     NOT NULL,
    changed_at timestamptz NOT NULL
);
