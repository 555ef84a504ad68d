//! Reading the store's values: a `COUNT(*)`, and a column as text or as an
//! integer (missing or of another type: empty or 0).

use wharf_guest::store::{self, Value};

pub(crate) fn count(sql: &str, args: &[Value]) -> Result<i64, store::Error> {
    let rows = store::query(sql, args)?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    })
}

pub(crate) fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::Text(s)) => s.clone(),
        Some(Value::Integer(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn integer(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    }
}
