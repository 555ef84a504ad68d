//! Request ids: the client's `x-request-id` when it sent a sane one,
//! otherwise a new UUID.

use http::HeaderMap;

/// The header carrying the id, both ways.
pub const HEADER: &str = "x-request-id";

/// The id for a request with `headers`.
pub fn for_request(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Short, printable, no spaces: safe to echo in headers and logs.
fn is_acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_a_sane_client_id_and_replaces_others() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(for_request(&headers), "abc-123");
        headers.insert(HEADER, "has space".parse().unwrap());
        assert_eq!(for_request(&headers).len(), 36);
        assert_eq!(for_request(&HeaderMap::new()).len(), 36);
    }
}
