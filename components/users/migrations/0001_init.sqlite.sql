-- Users. AUTOINCREMENT so an id is never handed out twice: a deleted user's
-- id (and so their unexpired tokens, whose subject is the id) can never
-- come to name somebody else. email_id is stored lowercased (unique
-- case-insensitively); password_hash is the argon2id PHC string.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email_id TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    phone_no TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Refresh tokens already exchanged (their `token-id` claim), kept until they
-- expire: a refresh token works once.
CREATE TABLE used_refresh_tokens (
    token_id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_refresh_tokens_expiry ON used_refresh_tokens (expires_at);
