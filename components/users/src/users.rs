//! Users: `POST users/` (register, anonymous callers only), `GET users/`,
//! `GET`, `PATCH`, `DELETE users/{id}` (token required; changes self only).
//! Others' records show `id`, `first_name` and `last_name`; the caller's own
//! also `email_id`, `phone_no` and the timestamps. The password is stored
//! only as the host's argon2id hash and never leaves the component.

use serde_json::{Map, Value as Json, json};
use wharf_guest::auth;
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use wharf_guest::reply::{self, Reply};
use wharf_guest::request::path_id;

use crate::fields;
use crate::time;

/// The columns every read returns, in the order [`to_json`] expects.
const COLUMNS: &str = "id, email_id, first_name, last_name, phone_no, created_at, updated_at";

/// What `PATCH` may change.
const CHANGEABLE: [&str; 3] = ["first_name", "last_name", "phone_no"];

/// A user row as JSON: everything for its owner, the public part otherwise.
fn to_json(row: &[Value], viewer: Option<i64>) -> Json {
    let text = |i: usize| match row.get(i) {
        Some(Value::Text(s)) => Json::String(s.clone()),
        _ => Json::Null,
    };
    let id = match row.first() {
        Some(Value::Integer(id)) => *id,
        _ => 0,
    };
    if viewer == Some(id) {
        json!({"id": id, "email_id": text(1), "first_name": text(2), "last_name": text(3), "phone_no": text(4),
               "created_at": text(5), "updated_at": text(6)})
    } else {
        json!({"id": id, "first_name": text(2), "last_name": text(3)})
    }
}

/// Whether user `id` exists.
pub(crate) fn exists(id: i64) -> Result<bool, store::Error> {
    Ok(!store::query("SELECT 1 FROM users WHERE id = $1", &[Value::Integer(id)])?.rows.is_empty())
}

/// 404 for a user id that names nobody (or is not an id at all).
fn user_not_found(id: &str) -> Reply {
    Reply::no_such("user", id)
}

/// A user id from the path: digits only, else (like an unknown id) 404.
fn parse_id(id: &str) -> Result<i64, Reply> {
    path_id(id).ok_or_else(|| user_not_found(id))
}

/// `POST users/`: 201 with the new user, 400, 409 `email_taken`, or 403 for
/// a caller who is already logged in.
pub(crate) fn register(caller: Option<i64>, body: &[u8]) -> Result<Reply, Reply> {
    if caller.is_some() {
        return Err(Reply::forbidden(
            "already_authenticated",
            "You are logged in: only anonymous callers can create an account (send no Authorization header).",
        ));
    }
    let object = reply::object(body)?;
    let mut bad = Map::new();
    fields::no_others(&object, &["email_id", "first_name", "last_name", "password", "phone_no"], &mut bad);
    let email = fields::required(&object, "email_id", fields::email, &mut bad);
    let first = fields::required(&object, "first_name", fields::name, &mut bad);
    let last = fields::required(&object, "last_name", fields::name, &mut bad);
    let password = fields::required(&object, "password", fields::new_password, &mut bad);
    let phone = fields::required(&object, "phone_no", fields::phone, &mut bad);
    let (Some(email), Some(first), Some(last), Some(password), Some(phone)) = (email, first, last, password, phone)
    else {
        return Err(Reply::invalid_fields(bad));
    };
    if !bad.is_empty() {
        return Err(Reply::invalid_fields(bad));
    }
    let taken = || {
        Reply::error(
            StatusCode::CONFLICT,
            "email_taken",
            format!("An account with the email `{email}` already exists."),
        )
    };
    // Checked before hashing (which is slow on purpose); the UNIQUE
    // constraint still decides between two registrations racing.
    if !store::query("SELECT 1 FROM users WHERE email_id = $1", &[Value::Text(email.clone())])?.rows.is_empty() {
        return Err(taken());
    }
    let hash = auth::hash_password(&password);
    if !hash.starts_with("$argon2id$") {
        return Err(Reply::internal("the host returned no argon2id hash"));
    }
    let now = time::now_text();
    let inserted = store::query(
        &format!(
            "INSERT INTO users (email_id, first_name, last_name, phone_no, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLUMNS}"
        ),
        &[
            Value::Text(email.clone()),
            Value::Text(first),
            Value::Text(last),
            Value::Text(phone),
            Value::Text(hash),
            Value::Text(now),
        ],
    );
    let rows = match inserted {
        Ok(rows) => rows,
        Err(store::Error::ConstraintViolation(_)) => return Err(taken()),
        Err(e) => return Err(e.into()),
    };
    let Some(row) = rows.rows.first() else { return Err(Reply::internal("INSERT … RETURNING returned no row")) };
    let Some(Value::Integer(id)) = row.first() else { return Err(Reply::internal("a new user has no integer id")) };
    Ok(Reply::created(format!("/api/auth/users/{id}"), to_json(row, Some(*id))))
}

/// `GET users/`: every user by id, in the list envelope.
pub(crate) fn list(caller: i64, query: &str) -> Result<Reply, Reply> {
    let page = reply::page_of(query)?;
    let total = match store::query("SELECT COUNT(*) FROM users", &[])?.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    };
    let rows = store::query(
        &format!("SELECT {COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2"),
        &[Value::Integer(page.limit), Value::Integer(page.offset)],
    )?;
    Ok(page.list(rows.rows.iter().map(|row| to_json(row, Some(caller))).collect(), total))
}

/// `GET users/{id}`.
pub(crate) fn get(caller: i64, id: &str) -> Result<Reply, Reply> {
    let n = parse_id(id)?;
    let rows = store::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"), &[Value::Integer(n)])?;
    match rows.rows.first() {
        Some(row) => Ok(Reply::json(StatusCode::OK, to_json(row, Some(caller)))),
        None => Err(user_not_found(id)),
    }
}

/// The target of a write: the caller themself, else 403 (or 404 when the
/// id names nobody).
fn own(caller: i64, id: &str, action: &str) -> Result<i64, Reply> {
    let n = parse_id(id)?;
    if n == caller {
        return Ok(n);
    }
    if exists(n)? {
        Err(Reply::forbidden("forbidden", format!("You can only {action} your own account (user {caller}).")))
    } else {
        Err(user_not_found(id))
    }
}

/// `PATCH users/{id}`: at least one of `first_name`, `last_name`,
/// `phone_no`; any other field (`email_id` and `password` included) is 400.
pub(crate) fn update(caller: i64, id: &str, body: &[u8]) -> Result<Reply, Reply> {
    let n = own(caller, id, "change")?;
    let object = reply::object(body)?;
    let mut bad = Map::new();
    fields::no_others(&object, &CHANGEABLE, &mut bad);
    for key in ["email_id", "password"].into_iter().filter(|key| object.contains_key(*key)) {
        bad.insert(key.into(), "cannot be changed".into());
    }
    let changes = [
        ("first_name", fields::optional(&object, "first_name", fields::name, &mut bad)),
        ("last_name", fields::optional(&object, "last_name", fields::name, &mut bad)),
        ("phone_no", fields::optional(&object, "phone_no", fields::phone, &mut bad)),
    ];
    if CHANGEABLE.iter().all(|key| !object.contains_key(*key)) {
        bad.insert("_".into(), "give at least one of first_name, last_name, phone_no".into());
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
    args.push(Value::Text(time::now_text()));
    sets.push(format!("updated_at = ${}", args.len()));
    args.push(Value::Integer(n));
    let sql = format!("UPDATE users SET {} WHERE id = ${} RETURNING {COLUMNS}", sets.join(", "), args.len());
    let rows = store::query(&sql, &args)?;
    match rows.rows.first() {
        Some(row) => Ok(Reply::json(StatusCode::OK, to_json(row, Some(caller)))),
        // Deleted since the token was checked.
        None => Err(user_not_found(id)),
    }
}

/// `DELETE users/{id}`: 204; the user's tokens stop working at once, since
/// every use of a token checks that its user exists.
pub(crate) fn delete(caller: i64, id: &str) -> Result<Reply, Reply> {
    let n = own(caller, id, "delete")?;
    let done = store::execute("DELETE FROM users WHERE id = $1", &[Value::Integer(n)])?;
    if done.rows_affected == 0 {
        return Err(user_not_found(id));
    }
    wharf_guest::info!("user {n} deleted their account");
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
