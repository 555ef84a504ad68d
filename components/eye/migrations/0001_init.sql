-- Sessions: UUIDs made by the service; seq orders ties.
CREATE TABLE sessions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- Events: created by the validation job (job_id makes that exactly once).
-- ts_us (microseconds since the epoch) orders and filters; timestamp is its
-- RFC 3339 form for output.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    category TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    ts_us BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    job_id BIGINT UNIQUE
);
CREATE INDEX events_ts ON events (ts_us, id);
CREATE INDEX events_session ON events (session_id, ts_us, id);
CREATE INDEX events_category ON events (category, ts_us, id);
CREATE INDEX events_name ON events (name, ts_us, id);

-- Events that failed validation, with the payload and why.
CREATE TABLE errors (
    id INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    job_id BIGINT UNIQUE
);
