-- Effects of jobs, recorded idempotently: one row per job however often it runs.
CREATE TABLE effects (
    job_id BIGINT PRIMARY KEY,
    effect TEXT NOT NULL,
    attempt INTEGER NOT NULL
);

-- Every delivery, to observe retries.
CREATE TABLE deliveries (
    job_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL
);

CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    note TEXT
);
