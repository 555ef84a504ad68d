//! What the `content_csv` fuzz target checks: the CSV upload's multipart
//! parser and row checks, on any body a client sends. The first input byte
//! picks how the rest is sent.

use crate::multipart;
use crate::upload::{MAX_FILE_BYTES, MAX_ROWS, parse};

const USER: i64 = 7;
const BOUNDARY: &str = "wharf-fuzz-9f86d081884c7d65";

/// Panics only when an invariant breaks:
/// - every refusal is 400, 413 or 415;
/// - a file wrapped in a well-formed form comes out of the multipart parser
///   byte for byte;
/// - what is taken is 1 to 10,000 rows from a UTF-8 file of at most 10 MiB,
///   each with a trimmed, non-empty title of at most 255 characters and no
///   control characters, and a story that is not blank.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let form_type = format!("multipart/form-data; boundary={BOUNDARY}");
    match mode % 3 {
        0 => taken_or_refused(Some(&form_type), rest, None),
        1 => {
            if rest.windows(BOUNDARY.len()).any(|w| w == BOUNDARY.as_bytes()) {
                return;
            }
            let mut body = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"books.csv\"\r\n\
                 Content-Type: text/csv\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(rest);
            body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
            let file = multipart::single_file(Some(&form_type), &body, "csv_file");
            assert!(file.as_ref().is_ok_and(|f| *f == rest), "the file did not come out of the form whole");
            taken_or_refused(Some(&form_type), &body, Some(rest));
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (content_type, body) = text.split_once('\n').unwrap_or((&text, ""));
            taken_or_refused(Some(content_type), body.as_bytes(), None);
        }
    }
}

/// `file` is the CSV inside `body`, when the caller built the form.
fn taken_or_refused(content_type: Option<&str>, body: &[u8], file: Option<&[u8]>) {
    match parse(USER, content_type, body) {
        Err(reply) => {
            let status = reply.status().as_u16();
            assert!(matches!(status, 400 | 413 | 415), "refused with {status}");
        }
        Ok(rows) => {
            assert!((1..=MAX_ROWS).contains(&rows.len()), "{} rows taken", rows.len());
            if let Some(file) = file {
                assert!(file.len() <= MAX_FILE_BYTES, "a file of {} bytes was taken", file.len());
                let text = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
                assert!(std::str::from_utf8(text).is_ok(), "a file that is not UTF-8 was taken");
            }
            for row in &rows {
                let title = &row.title;
                assert!(!title.is_empty() && title.trim() == title, "title {title:?}");
                assert!(title.chars().count() <= 255 && !title.chars().any(char::is_control), "title {title:?}");
                assert!(!row.story.trim().is_empty(), "a blank story was taken");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kept_fuzz_inputs_pass_their_check() {
        let replayed = wharf_fuzz_replay::replay("content_csv", super::check);
        assert!(replayed >= 5, "only {replayed} inputs for content_csv");
    }
}
