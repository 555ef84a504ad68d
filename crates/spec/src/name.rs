//! Component names: the one identifier that reaches file names, schemas, metrics and headers.

use std::fmt;
use std::sync::Arc;

/// A validated component name: 1–64 characters of `a-z`, `0-9`, `-`, `_`,
/// starting with a letter. Safe in file names, schemas, metrics and headers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentName(Arc<str>);

impl ComponentName {
    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, String> {
        let mut chars = name.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !starts_with_letter || !rest_ok || name.len() > 64 {
            return Err(format!(
                "`{name}` is not a valid component name: use 1-64 characters of a-z, 0-9, `-` and `_`, starting with a letter"
            ));
        }
        Ok(Self(name.into()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Maps keyed by name can be looked up with a `&str` (the order is the same).
impl std::borrow::Borrow<str> for ComponentName {
    fn borrow(&self) -> &str {
        &self.0
    }
}
