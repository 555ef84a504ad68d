//! Checking request fields: each check returns the value to store (trimmed,
//! the email lowercased) or what is wrong, phrased for the `fields` map of a
//! 400 `invalid_fields`.

use serde_json::{Map, Value as Json};

/// Longest first or last name (as Django's `User` allows).
const NAME_MAX: usize = 150;

/// The field `key` of `object`, which must be present; a problem is noted in `bad`.
pub(crate) fn required<T>(
    object: &Map<String, Json>,
    key: &str,
    check: fn(&str) -> Result<T, &'static str>,
    bad: &mut Map<String, Json>,
) -> Option<T> {
    if !object.contains_key(key) {
        bad.insert(key.into(), "is required".into());
        return None;
    }
    optional(object, key, check, bad)
}

/// The field `key` of `object` if present; a problem is noted in `bad`.
pub(crate) fn optional<T>(
    object: &Map<String, Json>,
    key: &str,
    check: fn(&str) -> Result<T, &'static str>,
    bad: &mut Map<String, Json>,
) -> Option<T> {
    let value = object.get(key)?;
    let Some(text) = value.as_str() else {
        bad.insert(key.into(), "must be a string".into());
        return None;
    };
    match check(text) {
        Ok(value) => Some(value),
        Err(why) => {
            bad.insert(key.into(), why.into());
            None
        }
    }
}

/// Notes every key of `object` not in `allowed` as an unknown field, so a
/// typo (or an attempt to set something that cannot be set) is an error
/// rather than silently ignored.
pub(crate) fn no_others(object: &Map<String, Json>, allowed: &[&str], bad: &mut Map<String, Json>) {
    for key in object.keys().filter(|k| !allowed.contains(&k.as_str())) {
        bad.insert(key.clone(), "is not a field of this request".into());
    }
}

/// Any string (tokens, the password at login: checked elsewhere).
pub(crate) fn any(text: &str) -> Result<String, &'static str> {
    Ok(text.to_owned())
}

/// An email address: trimmed, then checked and lowercased. Accepted: ASCII
/// `local@domain`, at most 254 characters; the local part 1–64 characters
/// of letters, digits and ``!#$%&'*+/=?^_`{|}~-`` in dot-separated runs;
/// the domain two or more dot-separated labels of letters, digits and
/// inner hyphens (internationalized domains in their `xn--` form), the last
/// one not all digits.
pub(crate) fn email(text: &str) -> Result<String, &'static str> {
    const WRONG: &str = "must be a valid email address, like `name@example.com`";
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.len() > 254 {
        return Err("must be at most 254 characters long");
    }
    let Some((local, domain)) = text.rsplit_once('@') else { return Err(WRONG) };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|run| {
            !run.is_empty() && run.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b))
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    if local_ok && domain_ok { Ok(text.to_ascii_lowercase()) } else { Err(WRONG) }
}

/// A first or last name: trimmed, 1–150 characters, no control characters.
pub(crate) fn name(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.chars().count() > NAME_MAX {
        return Err("must be at most 150 characters long");
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(text.to_owned())
}

/// A phone number: trimmed; 4–20 digits, optionally with a leading `+` and
/// spaces, dashes, dots or parentheses between them; at most 32 characters.
pub(crate) fn phone(text: &str) -> Result<String, &'static str> {
    const WRONG: &str = "must be a phone number: 4 to 20 digits, optionally with a leading + and spaces, -, . or ( )";
    let text = text.trim();
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let shape_ok = text.len() <= 32
        && text.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || b" -.()".contains(&b) || (b == b'+' && i == 0));
    if shape_ok && (4..=20).contains(&digits) { Ok(text.to_owned()) } else { Err(WRONG) }
}

/// A new password: at least 8 characters (Unicode characters, not bytes),
/// kept exactly as given (no trimming).
pub(crate) fn new_password(text: &str) -> Result<String, &'static str> {
    if text.chars().count() < 8 { Err("must be at least 8 characters long") } else { Ok(text.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(email("  Ada.Lovelace+x@Example.COM ").as_deref(), Ok("ada.lovelace+x@example.com"));
        assert_eq!(email("a@b.co").as_deref(), Ok("a@b.co"));
        assert_eq!(email("a@xn--bcher-kva.example").as_deref(), Ok("a@xn--bcher-kva.example"));
        for bad in ["", "plain", "@example.com", "a@", "a@localhost", "a@b..com", "a@-b.com", "a b@c.com", "a@b.123"] {
            assert!(email(bad).is_err(), "{bad:?} was accepted");
        }
        for bad in [".a@b.com", "a.@b.com", "a..b@c.com", "ä@b.com", "a@b@c.com"] {
            assert!(email(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(email(&format!("{}@b.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn names_phones_and_passwords() {
        assert_eq!(name("  Ada ").as_deref(), Ok("Ada"));
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(151)).is_err());
        assert!(name("a\u{0}b").is_err());
        assert_eq!(phone(" +1 (555) 010-9999 ").as_deref(), Ok("+1 (555) 010-9999"));
        for bad in ["", "123", "12a45", "1+2345", &"1".repeat(21)] {
            assert!(phone(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(new_password("1234567").is_err());
        assert!(new_password("12345678").is_ok());
        assert!(new_password("pässwörd").is_ok(), "characters, not bytes");
        assert!(new_password("äöüäöüä").is_err(), "7 characters in 14 bytes");
    }
}
