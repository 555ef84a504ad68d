//! Just enough `multipart/form-data` (RFC 7578) for one uploaded file: the
//! whole body is already in memory (the host capped it), so the parts are
//! cut out of it by their boundary.

use serde_json::Map;
use wstd::http::StatusCode;

use wharf_guest::reply::Reply;

/// One part: its form field name and its content.
struct Part<'a> {
    name: Option<String>,
    content: &'a [u8],
}

fn invalid(message: impl Into<String>) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, "invalid_multipart", message)
}

/// The content of the form's only field, `field`; any other field, a
/// missing one or the field twice is 400 `invalid_fields`, a body that is
/// not `multipart/form-data` 415.
pub(crate) fn single_file<'a>(content_type: Option<&str>, body: &'a [u8], field: &str) -> Result<&'a [u8], Reply> {
    let boundary = boundary(content_type.unwrap_or_default()).ok_or_else(|| {
        Reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Send the file as `multipart/form-data` (with a boundary), in the field `{field}`."),
        )
    })?;
    let parts = parts(body, &boundary)?;
    let mut bad = Map::new();
    let mut found = Vec::new();
    for part in &parts {
        match part.name.as_deref() {
            Some(name) if name == field => found.push(part.content),
            Some(name) => {
                bad.insert(name.to_owned(), format!("is not a field of this request (send only `{field}`)").into());
            }
            None => return Err(invalid("A part has no `Content-Disposition: form-data; name=\"…\"` header.")),
        }
    }
    match found.as_slice() {
        [content] if bad.is_empty() => Ok(content),
        [] => {
            bad.insert(field.to_owned(), "is required".into());
            Err(Reply::invalid_fields(bad))
        }
        [_] => Err(Reply::invalid_fields(bad)),
        _ => {
            bad.insert(field.to_owned(), "must be given once".into());
            Err(Reply::invalid_fields(bad))
        }
    }
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    let mut params = split_params(content_type).into_iter();
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim().eq_ignore_ascii_case("boundary").then(|| unquote(value.trim()))
        })
        .filter(|b| (1..=70).contains(&b.len()))
}

/// `a; b="x;y"; c` → `["a", " b=\"x;y\"", " c"]`: split on `;` outside quotes.
fn split_params(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_owned(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of `body`, cut at `--boundary` lines.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, Reply> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // Anything before the first boundary (the preamble) is ignored.
    let mut at = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        find(body, delimiter.as_bytes()).ok_or_else(|| invalid("The body has no part with the declared boundary."))?
            + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the end of the boundary line.
        let padding = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        let Some(rest) = rest[padding..].strip_prefix(b"\r\n") else {
            return Err(invalid("A boundary line is not followed by CRLF."));
        };
        let (headers, content_start) = if rest.starts_with(b"\r\n") {
            (&rest[..0], 2)
        } else {
            let end = find(rest, b"\r\n\r\n").ok_or_else(|| invalid("A part's headers do not end."))?;
            (&rest[..end], end + 4)
        };
        let content = &rest[content_start..];
        let end = find(content, delimiter.as_bytes())
            .ok_or_else(|| invalid("The body ends inside a part (no closing boundary)."))?;
        parts.push(Part { name: field_name(headers), content: &content[..end] });
        at = body.len() - content.len() + end + delimiter.len();
    }
}

/// The `name` of a part's `Content-Disposition: form-data; name="…"`.
fn field_name(headers: &[u8]) -> Option<String> {
    let headers = String::from_utf8_lossy(headers);
    headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        let mut params = split_params(value).into_iter();
        if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
            return None;
        }
        params.find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim().eq_ignore_ascii_case("name").then(|| unquote(value.trim()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_the_file_out_of_a_form() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"a;b.csv\"\r\n\
                     Content-Type: text/csv\r\n\r\na,b\r\n1,2\r\n--XyZ--\r\n";
        let file = single_file(Some("multipart/form-data; boundary=\"XyZ\""), body, "csv_file").ok();
        assert_eq!(file, Some(&b"a,b\r\n1,2"[..]));
        assert!(single_file(Some("application/json"), body, "csv_file").is_err());
        let two = b"--X\r\nContent-Disposition: form-data; name=\"csv_file\"\r\n\r\n1\r\n--X\r\n\
                    Content-Disposition: form-data; name=\"other\"\r\n\r\n2\r\n--X--";
        assert!(single_file(Some("multipart/form-data; boundary=X"), two, "csv_file").is_err());
        assert!(single_file(Some("multipart/form-data; boundary=X"), b"--X\r\n\r\nnope", "csv_file").is_err());
    }
}
