-- The server's work queue and what guards it. A trigger stores a run with
-- status 'queued' (steps are written as workers execute them); a worker claims
-- it like a run whose lease expired.
CREATE INDEX runs_queue ON runs(status, started_at);

-- Idempotency-Key of a trigger's request: a repeat within a day answers the
-- runs the first one queued (a JSON list of run ids).
CREATE TABLE idempotency (
    scope  TEXT NOT NULL,
    key    TEXT NOT NULL,
    runs   TEXT NOT NULL,
    at_ms  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Signed webhook requests accepted, by the SHA-256 of their signature, until
-- their timestamp leaves the window: the same signature again is a replay,
-- refused by every host that shares the store.
CREATE TABLE replays (
    digest   TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
);

-- API tokens: only the SHA-256 of each is kept (tokens are 256 random bits,
-- so a fast hash is enough: there is nothing to guess from a dictionary).
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    user_name   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_ms  INTEGER
);
