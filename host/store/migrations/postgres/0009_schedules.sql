-- Cron triggers: the last tick each playbook's schedule fired (or recorded
-- as missed), moved in the transaction that stores the tick's runs. Hosts
-- that share the store move it from the value they read, so one tick fires
-- once.
CREATE TABLE schedules (
    playbook     TEXT PRIMARY KEY,
    last_tick_ms BIGINT NOT NULL
);
