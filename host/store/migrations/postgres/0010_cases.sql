-- Cases: what belongs together, opened by a run or a person. Observables are
-- typed indicators linked to every case they appear in; links relate two
-- cases (`duplicate`, `possibly_related`, ...); a child names its parent.
CREATE TABLE cases (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    type        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,
    resolution  TEXT,
    assignee    TEXT,
    tags        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    run_id      TEXT,
    parent      TEXT REFERENCES cases(id)
);
CREATE INDEX cases_open ON cases(status, type, created_at);

CREATE TABLE case_observables (
    case_id TEXT NOT NULL REFERENCES cases(id),
    kind    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (case_id, kind, value)
);
CREATE INDEX observables_value ON case_observables(kind, value);

CREATE TABLE case_comments (
    id      BIGSERIAL PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    author  TEXT NOT NULL,
    at      TEXT NOT NULL,
    text    TEXT NOT NULL
);
CREATE INDEX comments_case ON case_comments(case_id);

CREATE TABLE case_links (
    a      TEXT NOT NULL REFERENCES cases(id),
    b      TEXT NOT NULL REFERENCES cases(id),
    kind   TEXT NOT NULL,
    reason TEXT,
    at     TEXT NOT NULL,
    PRIMARY KEY (a, b, kind)
);
CREATE INDEX links_b ON case_links(b);

-- De-duplication: a rendered key and the case it folds into, with when the
-- key was first and last seen (a window from the first, or a sliding gap
-- from the last) and how many repeats were folded.
CREATE TABLE case_keys (
    key      TEXT PRIMARY KEY,
    case_id  TEXT NOT NULL REFERENCES cases(id),
    first_ms BIGINT NOT NULL,
    last_ms  BIGINT NOT NULL,
    repeats  BIGINT NOT NULL
);
