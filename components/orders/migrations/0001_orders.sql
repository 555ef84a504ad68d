-- Orders (SPEC §5). total_amount is the product's price exactly as the
-- product service wrote it (the text of a JSON number), so no float ever
-- rounds it. published is 0 until the outbox job (job_id) has announced the
-- order on hub topic `orders`.
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    customer_fullname TEXT NOT NULL,
    product_name TEXT NOT NULL,
    total_amount TEXT NOT NULL,
    created_at TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    published_at TEXT,
    job_id BIGINT
);
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_unpublished ON orders (published, id);
