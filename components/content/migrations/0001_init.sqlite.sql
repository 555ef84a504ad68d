-- Books. Ids are never handed out twice, so a deleted book's interactions
-- (deleted with it) can never come to count for a newer one. author is a
-- user id of the users component (no foreign key: users may be deleted,
-- their books stay). Times are RFC 3339 UTC text with microseconds and Z,
-- so they sort as text.
CREATE TABLE books (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    author BIGINT NOT NULL,
    description TEXT NOT NULL,
    story TEXT NOT NULL,
    published_date TEXT NOT NULL,
    updated_on TEXT NOT NULL
);
CREATE INDEX books_published ON books (published_date, id);
