//! A standard `wasi:http/proxy` component, written against the WASI 0.2
//! bindings alone (the `wasip2` crate), as a plugin built for any host
//! would be. What it does is chosen by `?op=`:
//!
//! - `echo` (default): answers 200 with a text report of the request: method,
//!   path and query, the headers named `x-echo-*`, the body's length and a
//!   checksum, and the request trailers;
//! - `trailers`: answers a body followed by the response trailers
//!   `x-checksum` and `x-chunks` (announced in a `trailer` header);
//! - `stream`: answers `n` chunks of 1 KiB, each written and flushed on its own;
//! - `status`: answers the status `code` with no body;
//! - `headers`: answers with a repeated header and one of each case.
//!
//! No `unwrap` on what a client controls: a bad `op` is a 400.

use std::io::{Read as _, Write as _};

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(StdProxy);

struct StdProxy;

impl wasip2::exports::http::incoming_handler::Guest for StdProxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let query = request.path_with_query().and_then(|p| p.split_once('?').map(|(_, q)| q.to_owned()));
        let param = |name: &str| -> Option<String> {
            query.as_deref()?.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
        };
        match param("op").as_deref().unwrap_or("echo") {
            "echo" => echo(request, out),
            "trailers" => with_trailers(out),
            "stream" => stream(out, param("n").and_then(|n| n.parse().ok()).unwrap_or(4).min(4096)),
            "status" => status(out, param("code").and_then(|c| c.parse().ok()).unwrap_or(200)),
            "headers" => headers(out),
            _ => respond(out, 400, &[], b"unknown op\n", None),
        }
    }
}

/// FNV-1a, so the report is the same on every host without a dependency.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

/// `name: value` lines for the `x-echo-*` entries, sorted.
fn echo_lines(fields: &Fields) -> Vec<String> {
    let mut lines: Vec<String> = fields
        .entries()
        .into_iter()
        .filter(|(name, _)| name.to_ascii_lowercase().starts_with("x-echo-"))
        .map(|(name, value)| format!("{}: {}", name.to_ascii_lowercase(), String::from_utf8_lossy(&value)))
        .collect();
    lines.sort();
    lines
}

fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let mut report = vec![
        format!("method: {}", method_name(&request.method())),
        format!("path: {}", request.path_with_query().unwrap_or_default()),
        format!("scheme-given: {}", request.scheme().is_some_and(|s| matches!(s, Scheme::Http | Scheme::Https))),
    ];
    report.extend(echo_lines(&request.headers()));
    let Ok(body) = request.consume() else { return respond(out, 500, &[], b"body taken twice\n", None) };
    let mut bytes = Vec::new();
    {
        let Ok(mut stream) = body.stream() else { return respond(out, 500, &[], b"no body stream\n", None) };
        if stream.read_to_end(&mut bytes).is_err() {
            return respond(out, 400, &[], b"the body could not be read\n", None);
        }
    }
    report.push(format!("body-bytes: {}", bytes.len()));
    report.push(format!("body-checksum: {:016x}", checksum(&bytes)));
    let trailers = IncomingBody::finish(body);
    trailers.subscribe().block();
    match trailers.get() {
        Some(Ok(Ok(Some(fields)))) => report.extend(echo_lines(&fields).into_iter().map(|l| format!("trailer {l}"))),
        Some(Ok(Ok(None))) => report.push("no trailers".into()),
        _ => report.push("trailers failed".into()),
    }
    let mut text = report.join("\n");
    text.push('\n');
    respond(out, 200, &[("content-type", b"text/plain")], text.as_bytes(), None);
}

fn with_trailers(out: ResponseOutparam) {
    let body = b"body before trailers\n";
    let trailers = Fields::new();
    let checksum = format!("{:016x}", checksum(body));
    let _ = trailers.append("x-checksum", checksum.as_bytes());
    let _ = trailers.append("x-chunks", b"1");
    // HTTP/1.1 sends only the trailer fields the head announces.
    respond(out, 200, &[("content-type", b"text/plain"), ("trailer", b"x-checksum, x-chunks")], body, Some(trailers));
}

fn stream(out: ResponseOutparam, n: usize) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/octet-stream");
    let response = OutgoingResponse::new(headers);
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    let Ok(mut stream) = body.write() else { return };
    for i in 0..n {
        let chunk = [b'a' + (i % 26) as u8; 1024];
        if stream.write_all(&chunk).and_then(|()| std::io::Write::flush(&mut stream)).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn status(out: ResponseOutparam, code: u16) {
    respond(out, code, &[], b"", None);
}

fn headers(out: ResponseOutparam) {
    respond(
        out,
        200,
        &[("x-repeated", b"one"), ("x-repeated", b"two"), ("X-Mixed-Case", b"kept"), ("content-type", b"text/plain")],
        b"headers\n",
        None,
    );
}

fn respond(out: ResponseOutparam, code: u16, headers: &[(&str, &[u8])], body: &[u8], trailers: Option<Fields>) {
    let fields = Fields::new();
    for (name, value) in headers {
        let _ = fields.append(name, value);
    }
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(code).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if !body.is_empty() {
        let Ok(stream) = outgoing.write() else { return };
        // blocking_write_and_flush takes at most 4096 bytes at a time.
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, trailers);
}
