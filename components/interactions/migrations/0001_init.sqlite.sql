-- Reads and likes. One row per user, book and type: the UNIQUE constraint
-- decides between two identical requests racing (409 for the second).
-- user_id and content_id are ids of other components (no foreign keys).
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    content_id BIGINT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('read', 'like')),
    created_at TEXT NOT NULL,
    UNIQUE (user_id, content_id, type)
);
CREATE INDEX interactions_content ON interactions (content_id);
