//! Calls to the other components of SPEC §4, in-process
//! (`http://NAME.wharf.internal`, granted in the manifest): `users` to check
//! a caller's token, `interactions` for the counts per book and to delete a
//! book's interactions.

use serde_json::Value as Json;
use wharf_guest::auth;
use wstd::http::{Method, StatusCode};

pub(crate) use content_shared::calls::authenticate;
use content_shared::calls::{base, send};
use wharf_guest::reply::Reply;

/// Where `interactions` answers unless config `interactions_url` says otherwise.
const INTERACTIONS: &str = "http://interactions.wharf.internal";

/// The service token `interactions` accepts for deletions: kind `service`,
/// subject `content`, short-lived (one call).
const SERVICE_KIND: &str = "service";
const SERVICE_SUBJECT: &str = "content";
const SERVICE_TTL_SECONDS: u32 = 60;

/// Interactions per book, from `interactions`: `(content_id, total)`, only
/// books with at least one. `Err` is the 503 to answer.
pub(crate) async fn interaction_counts(request_id: &str) -> Result<Vec<(i64, i64)>, Reply> {
    let url = format!("{}/api/user-interaction/contents/books/top-contents/", base("interactions_url", INTERACTIONS));
    let unavailable = |what: String| {
        Reply::unavailable(
            "interactions_unavailable",
            "The interaction counts could not be read right now; retry shortly.",
            &what,
        )
    };
    let answer = send(Method::GET, &url, None, None, request_id).await.map_err(unavailable)?;
    if answer.status != StatusCode::OK {
        return Err(unavailable(format!("`GET {url}` answered {}", answer.status)));
    }
    let Ok(Json::Array(items)) = serde_json::from_slice::<Json>(&answer.body) else {
        return Err(unavailable(format!("`GET {url}` answered something that is not a JSON array")));
    };
    let counts = items
        .iter()
        .filter_map(|item| Some((item["content_id"].as_i64()?, item["total"].as_i64()?)))
        .filter(|(_, total)| *total > 0)
        .collect();
    Ok(counts)
}

/// Deletes every interaction with book `id` (`DELETE
/// /api/user-interaction/contents/{id}/` with a service token); `Err` says
/// why it did not happen (for the log).
pub(crate) async fn forget_interactions(id: i64, request_id: &str) -> Result<(), String> {
    let url = format!("{}/api/user-interaction/contents/{id}/", base("interactions_url", INTERACTIONS));
    let (token, _) = auth::sign(SERVICE_SUBJECT, SERVICE_KIND, SERVICE_TTL_SECONDS);
    let answer = send(Method::DELETE, &url, Some(&token), None, request_id).await?;
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(format!("`DELETE {url}` answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body)))
    }
}
