//! What both simulators serve: one read-only collection of seeded records,
//! `GET /{collection}/{key}`, every answer `Cache-Control: no-store` so a
//! caller (the host caches outbound GETs) sees the next injected fault.

use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wharf_guest::reply::Reply;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// A simulated collection, e.g. `users` of `user` records keyed by `id`.
#[derive(Clone, Copy, Debug)]
pub struct Collection {
    /// The first path segment, and the API's name: "the users API".
    pub name: &'static str,
    /// One record, for the 404 code: `user` gives `user_not_found`.
    pub one: &'static str,
    /// What the key is called: `id`, `code`.
    pub key: &'static str,
}

impl Collection {
    /// Serves `request`: 405 for anything but GET and HEAD, 404 for a path
    /// other than `/{name}/{key}`, else what `answer` gives for the
    /// (percent-decoded) key, with the milliseconds it waited for the log.
    pub async fn serve(
        self,
        request: Request<Body>,
        answer: impl AsyncFnOnce(&str) -> (Reply, u64),
    ) -> Result<Response<Body>, Error> {
        let request_id = wharf_guest::request::request_id(&request);
        let reply = match self.key_of(&request) {
            Ok(key) => {
                let (reply, waited) = answer(&key).await;
                let (name, status) = (self.name, reply.status().as_u16());
                wharf_guest::info!("answered GET /{name}/{key} with {status} after a {waited} ms delay");
                reply
            }
            Err(reply) => reply,
        };
        reply.with_header("cache-control", "no-store").into_response(&request_id)
    }

    fn key_of(&self, request: &Request<Body>) -> Result<String, Reply> {
        let method = request.method();
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Err(Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; the {} API is read-only (GET or HEAD).", self.name),
            ));
        }
        let path = request.uri().path();
        let rest = path.strip_prefix('/').and_then(|p| p.strip_prefix(self.name)).and_then(|p| p.strip_prefix('/'));
        let key = rest.map(|rest| rest.strip_suffix('/').unwrap_or(rest)).filter(|k| !k.is_empty() && !k.contains('/'));
        match key {
            Some(key) => Ok(percent_decode_str(key).decode_utf8_lossy().into_owned()),
            None => Err(Reply::error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("Nothing is served at `{path}`; ask for `/{}/{{{}}}`.", self.name, self.key),
            )),
        }
    }

    /// The 503 of a call drawn to fail (config `failure_rate`), if this one is.
    pub fn injected_failure(&self) -> Option<Reply> {
        crate::injected_failure().then(|| {
            Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "injected_failure",
                format!("The {} API failed on purpose (config `failure_rate`); retry.", self.name),
            )
        })
    }

    /// The record among `seeded` (a JSON array) whose key is `key`, or 404
    /// `{one}_not_found`.
    pub fn find<T: DeserializeOwned + Serialize>(&self, seeded: &str, key: &str, key_of: impl Fn(&T) -> &str) -> Reply {
        let records: Vec<T> = match serde_json::from_str(seeded) {
            Ok(records) => records,
            Err(e) => {
                wharf_guest::error!("the embedded {} are not valid: {e}", self.name);
                return Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "data_unavailable",
                    format!("The {} could not be loaded.", self.name),
                );
            }
        };
        match records.iter().find(|record| key_of(record) == key) {
            Some(record) => Reply::ok_serialized(record),
            None => Reply::error(
                StatusCode::NOT_FOUND,
                format!("{}_not_found", self.one),
                format!("No {} has {} `{key}`.", self.one, self.key),
            ),
        }
    }
}
