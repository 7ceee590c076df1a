-- What plugins logged during each step (secrets redacted by the runtime), at
-- most aerie_engine::StepLogs::MAX_LINES lines a step; the rest are counted.
CREATE TABLE logs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL REFERENCES runs(id),
    step_id  TEXT NOT NULL,
    item     INTEGER,
    plugin   TEXT NOT NULL,
    level    TEXT NOT NULL,
    context  TEXT NOT NULL,
    message  TEXT NOT NULL,
    at       TEXT NOT NULL
);

CREATE INDEX logs_run ON logs(run_id);

ALTER TABLE steps ADD COLUMN logs_dropped INTEGER NOT NULL DEFAULT 0;
