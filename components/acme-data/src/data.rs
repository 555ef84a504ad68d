//! The data file (`users`, `products`, `purchases`) and the look-ups the
//! data API answers from it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Number;

/// Everything the simulator serves, as read from the data file.
#[derive(Debug, Deserialize)]
pub(crate) struct Data {
    users: Vec<User>,
    products: Vec<Product>,
    purchases: Vec<Purchase>,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct User {
    username: String,
    email: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Product {
    id: i64,
    face: String,
    price: Number,
    size: Number,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Purchase {
    id: i64,
    username: String,
    product_id: i64,
    /// RFC 3339, as in the original data API (`2017-04-09T20:15:28.881899+00:00`).
    date: String,
}

impl Data {
    /// Reads and parses the data file; `Err` says what is wrong with it.
    pub(crate) fn load(path: &str) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("could not read `{path}`: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("`{path}` is not a valid data file: {e}"))
    }

    pub(crate) fn user(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    /// The user's purchases, newest first, at most `limit` of them.
    pub(crate) fn purchases_by_user(&self, username: &str, limit: Option<usize>) -> Vec<&Purchase> {
        let mut purchases: Vec<&Purchase> = self.purchases.iter().filter(|p| p.username == username).collect();
        // Parsed instants, not strings: offsets other than `+00:00` would
        // otherwise sort wrongly. Unparseable dates go last, by text.
        purchases.sort_by(|a, b| (instant(&b.date), &b.date).cmp(&(instant(&a.date), &a.date)));
        purchases.truncate(limit.unwrap_or(usize::MAX));
        purchases
    }

    /// The product's purchases, in file order.
    pub(crate) fn purchases_by_product(&self, product_id: i64) -> Vec<&Purchase> {
        self.purchases.iter().filter(|p| p.product_id == product_id).collect()
    }

    pub(crate) fn product(&self, id: i64) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }
}

/// A purchase date as an instant: RFC 3339, or `YYYY-MM-DD HH:MM:SS` taken as UTC.
fn instant(date: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(date)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc()))
        .ok()
}
