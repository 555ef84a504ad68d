-- Mandrill events. `seq` is arrival order (replay, ties); `id` is the stable
-- hash of the event object (idempotency).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT,
    event TEXT NOT NULL,
    email TEXT,
    subject TEXT,
    ts BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_newest ON events (ts DESC, seq DESC);
CREATE INDEX events_email ON events (email, ts DESC);
CREATE INDEX events_event ON events (event, ts DESC);
