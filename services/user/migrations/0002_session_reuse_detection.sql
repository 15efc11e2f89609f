-- Refresh tokens a session rotated out (SHA-256, like sessions.token). One
-- presented again means two parties hold the session's tokens: the session
-- is revoked. Kept as long as a refresh token can live, then pruned.
CREATE TABLE retired_refresh_tokens (
    token      text PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES sessions (id),
    retired_at timestamptz NOT NULL
);
CREATE INDEX retired_refresh_tokens_age ON retired_refresh_tokens (retired_at);
-- Throttle keys are now "<kind>:<sha256 hex>": counters under the old,
-- unbounded keys can never be read again.
DELETE FROM login_throttle WHERE key !~ '^[a-z-]+:[0-9a-f]{64}$';
