//! Books: `GET books/`, `POST books/` (token), `GET`, `PATCH`, `DELETE
//! books/{id}` (writes by the author only), `GET books/new-contents/` and
//! `GET books/top-contents/`.

use std::collections::{HashMap, HashSet};

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value as Json, json};
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use crate::calls;
use wharf_guest::reply::{self, Reply};
use wharf_guest::request::path_id;

/// The columns every read returns, in the order [`to_json`] expects.
pub(crate) const COLUMNS: &str = "id, title, author, description, story, published_date, updated_on";

/// What `POST` takes and `PATCH` may change.
const FIELDS: [&str; 3] = ["title", "description", "story"];

/// Longest title, in characters.
const TITLE_MAX: usize = 255;

/// Ids per `IN (…)` list.
const CHUNK: usize = 500;

/// Now, as RFC 3339 UTC with microseconds and `Z` (sorts as text).
pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An integer column.
fn int(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    }
}

/// A book row as JSON.
pub(crate) fn to_json(row: &[Value]) -> Json {
    let text = |i: usize| match row.get(i) {
        Some(Value::Text(s)) => Json::String(s.clone()),
        _ => Json::Null,
    };
    json!({"id": int(row.first()), "title": text(1), "author": int(row.get(2)), "description": text(3),
           "story": text(4), "published_date": text(5), "updated_on": text(6)})
}

/// A title: trimmed, 1–255 characters, no control characters.
pub(crate) fn title(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.chars().count() > TITLE_MAX {
        return Err("must be at most 255 characters long");
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(text.to_owned())
}

/// A description: any text, kept as given (may be empty).
pub(crate) fn description(text: &str) -> Result<String, &'static str> {
    Ok(text.to_owned())
}

/// A story: kept as given, but not empty or only white space.
pub(crate) fn story(text: &str) -> Result<String, &'static str> {
    if text.trim().is_empty() { Err("must not be empty") } else { Ok(text.to_owned()) }
}

/// The string field `key` of `object`, if present, checked; a problem is
/// noted in `bad`. A `null` description counts as empty.
fn field(
    object: &Map<String, Json>,
    key: &str,
    check: fn(&str) -> Result<String, &'static str>,
    bad: &mut Map<String, Json>,
) -> Option<String> {
    let value = object.get(key)?;
    let text = match value {
        Json::String(text) => text.as_str(),
        Json::Null if key == "description" => "",
        _ => {
            bad.insert(key.into(), "must be a string".into());
            return None;
        }
    };
    check(text).map_err(|why| bad.insert(key.into(), why.into())).ok()
}

fn no_others(object: &Map<String, Json>, bad: &mut Map<String, Json>) {
    for key in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        bad.insert(key.clone(), "is not a field of this request".into());
    }
}

fn book_not_found(id: &str) -> Reply {
    Reply::no_such("book", id)
}

/// A book id from the path: digits only, else (like an unknown id) 404.
fn parse_id(id: &str) -> Result<i64, Reply> {
    path_id(id).ok_or_else(|| book_not_found(id))
}

fn count() -> Result<i64, Reply> {
    Ok(int(store::query("SELECT COUNT(*) FROM books", &[])?.rows.first().and_then(|r| r.first())))
}

/// A page of books in `order`, in the list envelope.
fn page(query: &str, order: &str) -> Result<Reply, Reply> {
    let page = reply::page_of(query)?;
    let total = count()?;
    let rows = store::query(
        &format!("SELECT {COLUMNS} FROM books ORDER BY {order} LIMIT $1 OFFSET $2"),
        &[Value::Integer(page.limit), Value::Integer(page.offset)],
    )?;
    Ok(page.list(rows.rows.iter().map(|row| to_json(row)).collect(), total))
}

/// `GET books/`: by id.
pub(crate) fn list(query: &str) -> Result<Reply, Reply> {
    page(query, "id")
}

/// `GET books/new-contents/`: newest first (ties: the later id first).
pub(crate) fn newest(query: &str) -> Result<Reply, Reply> {
    page(query, "published_date DESC, id DESC")
}

/// `POST books/` `{title, description?, story}`: 201 with the book, its
/// author the caller.
pub(crate) fn create(user: i64, body: &[u8]) -> Result<Reply, Reply> {
    let object = reply::object(body)?;
    let mut bad = Map::new();
    no_others(&object, &mut bad);
    for key in ["title", "story"].into_iter().filter(|key| !object.contains_key(*key)) {
        bad.insert(key.into(), "is required".into());
    }
    let title = field(&object, "title", title, &mut bad);
    let description = field(&object, "description", description, &mut bad).unwrap_or_default();
    let story = field(&object, "story", story, &mut bad);
    let (Some(title), Some(story)) = (title, story) else { return Err(Reply::invalid_fields(bad)) };
    if !bad.is_empty() {
        return Err(Reply::invalid_fields(bad));
    }
    let id = insert(user, &title, &description, &story)?;
    let rows = store::query(&format!("SELECT {COLUMNS} FROM books WHERE id = $1"), &[Value::Integer(id)])?;
    match rows.rows.first() {
        Some(row) => Ok(Reply::created(format!("/api/content/books/{id}"), to_json(row))),
        None => Err(Reply::internal("a book just inserted is not there")),
    }
}

/// Inserts one book; its id.
pub(crate) fn insert(author: i64, title: &str, description: &str, story: &str) -> Result<i64, Reply> {
    let now = now_text();
    let rows = store::query(
        "INSERT INTO books (title, author, description, story, published_date, updated_on) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        &[
            Value::Text(title.to_owned()),
            Value::Integer(author),
            Value::Text(description.to_owned()),
            Value::Text(story.to_owned()),
            Value::Text(now),
        ],
    )?;
    match rows.rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(id)) => Ok(*id),
        _ => Err(Reply::internal("INSERT … RETURNING id gave no integer id")),
    }
}

/// `GET books/{id}`.
pub(crate) fn get(id: &str) -> Result<Reply, Reply> {
    let n = parse_id(id)?;
    let rows = store::query(&format!("SELECT {COLUMNS} FROM books WHERE id = $1"), &[Value::Integer(n)])?;
    match rows.rows.first() {
        Some(row) => Ok(Reply::json(StatusCode::OK, to_json(row))),
        None => Err(book_not_found(id)),
    }
}

/// The target of a write: a book of the caller's, else 403 (or 404 when
/// there is no such book).
fn own(user: i64, id: &str, action: &str) -> Result<i64, Reply> {
    let n = parse_id(id)?;
    let rows = store::query("SELECT author FROM books WHERE id = $1", &[Value::Integer(n)])?;
    match rows.rows.first() {
        None => Err(book_not_found(id)),
        Some(row) if int(row.first()) == user => Ok(n),
        Some(_) => Err(Reply::forbidden("forbidden", format!("Only its author can {action} book {n}."))),
    }
}

/// `PATCH books/{id}`: at least one of `title`, `description`, `story`;
/// author only.
pub(crate) fn update(user: i64, id: &str, body: &[u8]) -> Result<Reply, Reply> {
    let n = own(user, id, "change")?;
    let object = reply::object(body)?;
    let mut bad = Map::new();
    no_others(&object, &mut bad);
    let changes = [
        ("title", field(&object, "title", title, &mut bad)),
        ("description", field(&object, "description", description, &mut bad)),
        ("story", field(&object, "story", story, &mut bad)),
    ];
    if FIELDS.iter().all(|key| !object.contains_key(*key)) {
        bad.insert("_".into(), "give at least one of title, description, story".into());
    }
    if !bad.is_empty() {
        return Err(Reply::invalid_fields(bad));
    }
    let mut sets = Vec::new();
    let mut args = Vec::new();
    for (column, value) in changes {
        if let Some(value) = value {
            args.push(Value::Text(value));
            sets.push(format!("{column} = ${}", args.len()));
        }
    }
    args.push(Value::Text(now_text()));
    sets.push(format!("updated_on = ${}", args.len()));
    args.push(Value::Integer(n));
    let sql = format!("UPDATE books SET {} WHERE id = ${} RETURNING {COLUMNS}", sets.join(", "), args.len());
    let rows = store::query(&sql, &args)?;
    match rows.rows.first() {
        Some(row) => Ok(Reply::json(StatusCode::OK, to_json(row))),
        // Deleted since it was checked.
        None => Err(book_not_found(id)),
    }
}

/// `DELETE books/{id}`: author only; 204. The book's interactions are
/// deleted first (by `interactions`); if that fails the book is kept and
/// the answer is 503, so a book never goes while its interactions stay. A
/// second, best-effort call after the book is gone sweeps up interactions
/// recorded in between.
pub(crate) async fn delete(user: i64, id: &str, request_id: &str) -> Result<Reply, Reply> {
    let n = own(user, id, "delete")?;
    if let Err(why) = calls::forget_interactions(n, request_id).await {
        return Err(Reply::unavailable(
            "interactions_unavailable",
            "The book's interactions could not be deleted, so the book was kept; retry shortly.",
            &format!("deleting the interactions of book {n}: {why}"),
        ));
    }
    let done = store::execute("DELETE FROM books WHERE id = $1", &[Value::Integer(n)])?;
    if done.rows_affected == 0 {
        return Err(book_not_found(id));
    }
    if let Err(why) = calls::forget_interactions(n, request_id).await {
        wharf_guest::warn!("book {n} deleted; sweeping its interactions again failed: {why}");
    }
    wharf_guest::info!("user {user} deleted book {n}");
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// Which of `ids` are books.
fn existing(ids: &[i64]) -> Result<HashSet<i64>, Reply> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let args: Vec<Value> = chunk.iter().map(|id| Value::Integer(*id)).collect();
        let rows = store::query(&format!("SELECT id FROM books WHERE id IN ({})", marks.join(", ")), &args)?;
        found.extend(rows.rows.iter().map(|row| int(row.first())));
    }
    Ok(found)
}

/// `GET books/top-contents/`: books with the most interactions (reads +
/// likes, counted by `interactions`) first, each with its `interactions`
/// count; ties by id ascending; books without any last, by id.
pub(crate) async fn top(query: &str, request_id: &str) -> Result<Reply, Reply> {
    let page = reply::page_of(query)?;
    let counts = calls::interaction_counts(request_id).await?;
    // Interactions of a book deleted a moment ago may still be counted.
    let ids: Vec<i64> = counts.iter().map(|(id, _)| *id).collect();
    let books = existing(&ids)?;
    let mut ranked: Vec<(i64, i64)> = counts.into_iter().filter(|(id, _)| books.contains(id)).collect();
    ranked.sort_by_key(|(id, total)| (-total, *id));
    let (start, wanted) =
        (usize::try_from(page.offset).unwrap_or(usize::MAX), usize::try_from(page.limit).unwrap_or(0));
    let mut chosen: Vec<(i64, i64)> = ranked.iter().skip(start).take(wanted).copied().collect();
    if chosen.len() < wanted {
        // Then the books nobody read or liked, by id: walked in id order,
        // skipping the ranked ones.
        let mut skip = start.saturating_sub(ranked.len());
        let mut after = 0;
        'walk: loop {
            let rows =
                store::query("SELECT id FROM books WHERE id > $1 ORDER BY id LIMIT 1000", &[Value::Integer(after)])?;
            if rows.rows.is_empty() {
                break;
            }
            for row in &rows.rows {
                let id = int(row.first());
                after = id;
                if books.contains(&id) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                chosen.push((id, 0));
                if chosen.len() == wanted {
                    break 'walk;
                }
            }
        }
    }
    let ids: Vec<i64> = chosen.iter().map(|(id, _)| *id).collect();
    let mut rows: HashMap<i64, Json> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let args: Vec<Value> = chunk.iter().map(|id| Value::Integer(*id)).collect();
        let found = store::query(&format!("SELECT {COLUMNS} FROM books WHERE id IN ({})", marks.join(", ")), &args)?;
        rows.extend(found.rows.iter().map(|row| (int(row.first()), to_json(row))));
    }
    let items: Vec<Json> = chosen
        .iter()
        .filter_map(|(id, total)| {
            let mut book = rows.remove(id)?;
            book["interactions"] = json!(total);
            Some(book)
        })
        .collect();
    Ok(page.list(items, count()?))
}
