-- A webhook trigger's dedupe keys (`trigger: { webhook: { dedupe } }`): the
-- run each key started, when it was first and last seen, and how many
-- repeats were folded into it instead of starting runs.
CREATE TABLE trigger_keys (
    scope    TEXT NOT NULL,
    key      TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms  BIGINT NOT NULL,
    repeats  BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
