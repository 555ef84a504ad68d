-- Calls received for config `flaky_user_id`, so "fails every other call"
-- alternates across instances (each request runs in a fresh one), restarts
-- and, on PostgreSQL, hosts. Same DDL on both backends.
CREATE TABLE flaky_calls (
    user_id TEXT PRIMARY KEY,
    calls BIGINT NOT NULL
);
