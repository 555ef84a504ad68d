//! `hello`: answers `GET /hello/` and `GET /hello/{name}` with a greeting
//! whose word comes from the `greeting` config key.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path();
    let name = path.strip_prefix("/hello").unwrap_or_default().trim_matches('/');
    let name = if name.is_empty() { "world" } else { name };
    let greeting = wharf_guest::config::get("greeting").unwrap_or_else(|| "Hello".to_owned());
    wharf_guest::info!("greeting {name}");
    let body = format!("{{\"message\":{},\"component\":\"hello\"}}", json_string(&format!("{greeting}, {name}!")));
    let response =
        Response::builder().status(StatusCode::OK).header("content-type", "application/json").body(Body::from(body))?;
    Ok(response)
}

/// A JSON string literal for `text` (the component needs no JSON crate).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
