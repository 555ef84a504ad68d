//! Building the URLs of outbound calls: a value (a username, an id) as one
//! path segment, so it can never reach another path. Enabled by the `url`
//! feature.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Escaped in a path segment: controls, space, `%`, `/` and what RFC 3986
/// does not allow there unencoded.
pub const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `value` as one path segment. `.` and `..` are spelled `%2E` so no
/// server normalises them into another path.
pub fn segment(value: &str) -> String {
    match value {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => utf8_percent_encode(value, SEGMENT).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_segment_stays_one_segment() {
        assert_eq!(segment("ada"), "ada");
        assert_eq!(segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(segment("."), "%2E");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("..."), "...");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
