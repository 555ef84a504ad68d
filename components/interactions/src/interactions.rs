//! Reads and likes: `POST read/`, `POST like/` (token), the counts per book
//! (`GET contents/books/top-contents/`), and `DELETE contents/{content_id}/`,
//! which only the `content` component may call (with a service token), when
//! it deletes a book.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value as Json, json};
use wharf_guest::auth;
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use crate::calls;
use wharf_guest::reply::{self, Reply};
use wharf_guest::request::{Incoming, path_id};

/// The columns every read returns, in the order [`to_json`] expects.
const COLUMNS: &str = "id, user_id, content_id, type, created_at";

/// The token kind `content` signs its calls with, and its subject.
const SERVICE_KIND: &str = "service";
const SERVICE_CALLER: &str = "content";

/// What a user did with a book.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Read,
    Like,
}

impl Kind {
    /// As stored and shown: `read` or `like`.
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Like => "like",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Like => "liked",
        }
    }
}

/// An integer column (SUM and COUNT come back as integers on both backends;
/// anything else counts as 0).
fn int(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Integer(n)) => *n,
        Some(Value::Real(x)) => *x as i64,
        Some(Value::Text(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn to_json(row: &[Value]) -> Json {
    let text = |i: usize| match row.get(i) {
        Some(Value::Text(s)) => Json::String(s.clone()),
        _ => Json::Null,
    };
    json!({"id": int(row.first()), "user_id": int(row.get(1)), "content_id": int(row.get(2)), "type": text(3),
           "created_at": text(4)})
}

/// `POST read/` or `POST like/` `{content_id}`: 201 with the interaction;
/// 401, 400, 404 for a book that does not exist, 409 `duplicate_interaction`.
pub(crate) async fn record(kind: Kind, call: &Incoming) -> Result<Reply, Reply> {
    let user = calls::authenticate(call).await?;
    let object = reply::object(&call.body)?;
    let mut bad = Map::new();
    for key in object.keys().filter(|k| *k != "content_id") {
        bad.insert(key.clone(), "is not a field of this request".into());
    }
    let content = match object.get("content_id") {
        None => {
            bad.insert("content_id".into(), "is required".into());
            None
        }
        Some(value) => {
            let id = value.as_i64().filter(|n| *n > 0);
            if id.is_none() {
                bad.insert("content_id".into(), "must be a positive integer (a book id)".into());
            }
            id
        }
    };
    let Some(content) = content.filter(|_| bad.is_empty()) else { return Err(Reply::invalid_fields(bad)) };
    if !calls::book_exists(content, &call.request_id).await? {
        return Err(Reply::not_found(format!("No book has id {content}.")));
    }
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let inserted = store::query(
        &format!(
            "INSERT INTO interactions (user_id, content_id, type, created_at) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        ),
        &[Value::Integer(user), Value::Integer(content), Value::Text(kind.as_str().into()), Value::Text(now)],
    );
    let rows = match inserted {
        Ok(rows) => rows,
        Err(store::Error::ConstraintViolation(_)) => {
            return Err(Reply::error(
                StatusCode::CONFLICT,
                "duplicate_interaction",
                format!("You already {} book {content}; each counts once.", kind.past()),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    match rows.rows.first() {
        Some(row) => Ok(Reply::json(StatusCode::CREATED, to_json(row))),
        None => Err(Reply::internal("INSERT … RETURNING returned no row")),
    }
}

/// `GET contents/books/top-contents/`: every book with at least one
/// interaction, `[{content_id, reads, likes, total}]`, most first, ties by
/// `content_id` ascending.
pub(crate) fn top() -> Result<Reply, Reply> {
    let rows = store::query(
        "SELECT content_id, \
                SUM(CASE WHEN type = 'read' THEN 1 ELSE 0 END) AS reads, \
                SUM(CASE WHEN type = 'like' THEN 1 ELSE 0 END) AS likes, \
                COUNT(*) AS total \
         FROM interactions GROUP BY content_id ORDER BY total DESC, content_id ASC",
        &[],
    )?;
    let items: Vec<Json> = rows
        .rows
        .iter()
        .map(|row| {
            json!({"content_id": int(row.first()), "reads": int(row.get(1)), "likes": int(row.get(2)),
                   "total": int(row.get(3))})
        })
        .collect();
    Ok(Reply::json(StatusCode::OK, Json::Array(items)))
}

/// `DELETE contents/{content_id}/`: forgets every interaction with a book.
/// Only `content` may: it sends a token of kind `service` whose subject is
/// `content`, signed with the host's key (which only components granted
/// `auth` can use). 204 whether or not there were any.
pub(crate) fn forget(call: &Incoming, id: &str) -> Result<Reply, Reply> {
    let token = call.bearer()?;
    match auth::verify(token, SERVICE_KIND) {
        Ok(claims) if claims.subject == SERVICE_CALLER => {}
        Ok(claims) => {
            return Err(Reply::forbidden(
                "forbidden",
                format!("Only the content component may delete interactions (this token is `{}`'s).", claims.subject),
            ));
        }
        Err(_) => {
            return Err(Reply::unauthorized(
                "invalid_token",
                "This needs a service token of the content component; user tokens cannot delete interactions.",
            ));
        }
    }
    let Some(content) = path_id(id) else { return Err(Reply::not_found(format!("`{id}` is not a book id."))) };
    let done = store::execute("DELETE FROM interactions WHERE content_id = $1", &[Value::Integer(content)])?;
    wharf_guest::info!("deleted {} interactions with book {content}", done.rows_affected);
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
