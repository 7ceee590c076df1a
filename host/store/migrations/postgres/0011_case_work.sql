-- The checklist people work a case by (the seed's "workplan"): numbered in
-- the case, done by whom and when.
CREATE TABLE case_tasks (
    case_id    TEXT NOT NULL REFERENCES cases(id),
    number     BIGINT NOT NULL,
    title      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    done_at    TEXT,
    done_by    TEXT,
    PRIMARY KEY (case_id, number)
);

-- A case action a run made, by the step (and item) that made it, with its
-- output: a resumed run that calls it again gets the same answer instead of
-- a second case or comment.
CREATE TABLE case_calls (
    origin TEXT PRIMARY KEY,
    output TEXT NOT NULL
);

-- Observables the operator marked as saying nothing about what belongs
-- together (the proxy's own address, the corporate domain): similarity
-- leaves them out.
CREATE TABLE ignored_observables (
    kind   TEXT NOT NULL,
    value  TEXT NOT NULL,
    reason TEXT,
    marked_by TEXT NOT NULL,
    at     TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);

-- How many cases hold an observable, for the inverse-frequency weight: one
-- indexed lookup instead of a count over millions of rows.
CREATE TABLE observable_counts (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    cases BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);

-- Running totals read on every case write (`cases`: how many cases exist).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) SELECT 'cases', COUNT(*) FROM cases;
INSERT INTO observable_counts (kind, value, cases)
    SELECT kind, value, COUNT(*) FROM case_observables GROUP BY kind, value;
