//! Calls to the other components of SPEC §4, in-process
//! (`http://NAME.wharf.internal`, granted in the manifest): `users` to check
//! a caller's token, `content` to check that a book exists.

use wstd::http::{Method, StatusCode};

pub(crate) use content_shared::calls::authenticate;
use content_shared::calls::{base, send};
use wharf_guest::reply::Reply;

/// Where `content` answers unless config `content_url` says otherwise.
const CONTENT: &str = "http://content.wharf.internal";

/// Whether book `id` exists, as `content` says now (`GET /api/content/books/{id}`
/// past the cache); `Err` is the 503 to answer when it gave no usable answer.
pub(crate) async fn book_exists(id: i64, request_id: &str) -> Result<bool, Reply> {
    let url = format!("{}/api/content/books/{id}", base("content_url", CONTENT));
    let unavailable = |what: String| {
        Reply::unavailable("content_unavailable", "The book could not be looked up right now; retry shortly.", &what)
    };
    let answer = send(Method::GET, &url, None, None, request_id).await.map_err(unavailable)?;
    match answer.status {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        status => Err(unavailable(format!("`GET {url}` answered {status}"))),
    }
}
