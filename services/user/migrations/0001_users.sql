CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text        NOT NULL,
    phone         text        NOT NULL DEFAULT '',
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique whatever their case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_listing ON users (created_at, id);

CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id),
    -- SHA-256 of the refresh token: the token itself is never stored.
    token      text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expired_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Failed-login counters, one row per throttled key (account, client, or both).
CREATE TABLE login_throttle (
    key               text PRIMARY KEY,
    failures          int         NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz
);
