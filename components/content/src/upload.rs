//! `POST books/upload-csv/` (token): books from a CSV file, all or nothing.
//! The file is the form field `csv_file` of a `multipart/form-data` body:
//! UTF-8 (a BOM is allowed), at most 10 MiB, the header exactly
//! `title,author_id,description,story`, RFC 4180 quoting. Every row is
//! checked before anything is stored; one bad row refuses the whole file,
//! listing each bad row. Good files are stored in one transaction.

use serde_json::{Value as Json, json};
use wharf_guest::store;
use wstd::http::StatusCode;

use crate::books;
use crate::multipart;
use wharf_guest::reply::Reply;

/// The largest file taken (the route's body cap is a little higher, for the
/// multipart framing).
pub(crate) const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// The most rows one file may hold: each is one insert inside the request's
/// deadline.
pub(crate) const MAX_ROWS: usize = 10_000;

/// The header, exactly.
const HEADER: [&str; 4] = ["title", "author_id", "description", "story"];

fn invalid(message: impl Into<String>) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, "invalid_csv", message)
}

/// A book to create from one row.
pub(crate) struct Row {
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) story: String,
}

pub(crate) fn csv(user: i64, content_type: Option<&str>, body: &[u8]) -> Result<Reply, Reply> {
    let rows = parse(user, content_type, body)?;
    store::begin()?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        // An error ends the request, which rolls the transaction back.
        ids.push(books::insert(user, &row.title, &row.description, &row.story)?);
    }
    store::commit()?;
    wharf_guest::info!("user {user} uploaded {} books", ids.len());
    Ok(Reply::json(StatusCode::CREATED, json!({"created": ids.len(), "ids": ids})))
}

/// Every check of an upload, before anything is stored: the multipart form,
/// the file's size, encoding and header, and each row. Pure, so the fuzzer
/// drives it natively (`fuzz/`, target `content_csv`).
pub(crate) fn parse(user: i64, content_type: Option<&str>, body: &[u8]) -> Result<Vec<Row>, Reply> {
    let file = multipart::single_file(content_type, body, "csv_file")?;
    if file.len() > MAX_FILE_BYTES {
        return Err(Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("The file has {} bytes; at most 10 MiB (10485760 bytes) are taken.", file.len()),
        ));
    }
    let file = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
    let text = std::str::from_utf8(file).map_err(|e| {
        invalid(format!("The file is not UTF-8 (the first bad byte is at offset {}).", e.valid_up_to()))
    })?;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        None => return Err(invalid(format!("The file is empty; it needs the header `{}`.", HEADER.join(",")))),
        Some(Err(e)) => return Err(invalid(format!("The header cannot be read as CSV: {e}."))),
        Some(Ok(header)) => header,
    };
    if header.iter().ne(HEADER) {
        let got: Vec<&str> = header.iter().collect();
        return Err(invalid(format!("The header must be exactly `{}`, not `{}`.", HEADER.join(","), got.join(","))));
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, record) in records.enumerate() {
        let n = i + 1;
        if n > MAX_ROWS {
            return Err(invalid(format!("The file has more than {MAX_ROWS} rows; split it.")));
        }
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                bad.push(json!({"row": n, "reason": format!("cannot be read as CSV: {e}")}));
                continue;
            }
        };
        match check(user, &record) {
            Ok(row) => rows.push(row),
            Err(reason) => bad.push(json!({"row": n, "reason": reason})),
        }
    }
    if !bad.is_empty() {
        let count = bad.len();
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_rows",
            format!("{count} row(s) are invalid, so nothing was stored; see `rows` (1-based, header excluded)."),
        )
        .with_detail("rows", Json::Array(bad)));
    }
    if rows.is_empty() {
        return Err(invalid("The file has a header but no rows."));
    }
    Ok(rows)
}

/// One data row, checked like `POST books/`; `author_id` must be empty or
/// the caller's own id. `Err` says everything wrong with it.
fn check(user: i64, record: &csv::StringRecord) -> Result<Row, String> {
    if record.len() != HEADER.len() {
        return Err(format!("has {} fields; expected 4 ({})", record.len(), HEADER.join(",")));
    }
    let field = |i: usize| record.get(i).unwrap_or_default();
    let mut reasons = Vec::new();
    let title = books::title(field(0)).map_err(|why| reasons.push(format!("title {why}"))).ok();
    let author = field(1).trim();
    if !author.is_empty() && author.parse::<i64>().ok() != Some(user) {
        reasons.push(format!("author_id must be empty or your own id ({user}), not `{author}`"));
    }
    let description = books::description(field(2)).unwrap_or_default();
    let story = books::story(field(3)).map_err(|why| reasons.push(format!("story {why}"))).ok();
    match (title, story) {
        (Some(title), Some(story)) if reasons.is_empty() => Ok(Row { title, description, story }),
        _ => Err(reasons.join("; ")),
    }
}
