//! Publishes to the hub while a store transaction is open, so the host's
//! "sent only after commit" rule can be tested from outside.
//!
//! - `/hubtx/commit/MSG`: begin, publish MSG to `feed`, commit.
//! - `/hubtx/rollback/MSG`: begin, publish MSG, roll back.
//! - `/hubtx/trap/MSG`: begin, publish MSG, trap with the transaction open.
//! - `/hubtx/direct/MSG`: publish MSG outside any transaction.

use wharf_guest::{hub, store};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    let mut parts = path.trim_start_matches("/hubtx/").splitn(2, '/');
    let (action, message) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let outcome = match action {
        "direct" => hub::publish("feed", message).map_err(|e| format!("{e:?}")),
        "commit" | "rollback" | "trap" => in_transaction(action, message),
        _ => Err("unknown action".to_owned()),
    };
    let status = if outcome.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok(Response::builder().status(status).body(Body::from(outcome.err().unwrap_or_default()))?)
}

fn in_transaction(action: &str, message: &str) -> Result<(), String> {
    store::begin().map_err(|e| format!("{e:?}"))?;
    hub::publish("feed", message).map_err(|e| format!("{e:?}"))?;
    match action {
        "commit" => store::commit().map_err(|e| format!("{e:?}")),
        "rollback" => store::rollback().map_err(|e| format!("{e:?}")),
        _ => panic!("trapping with the transaction open"),
    }
}
