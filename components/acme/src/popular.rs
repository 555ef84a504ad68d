//! The ranking behind `GET /api/recent_purchases/{username}` (SPEC §3), as
//! pure functions over what the data API answered: no I/O here.

use std::cmp::Reverse;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Number;

/// One purchase as the data API lists it (its `id` is not needed).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Purchase {
    pub(crate) username: String,
    pub(crate) product_id: i64,
    /// RFC 3339 (`2017-04-09T20:15:28.881899+00:00`).
    pub(crate) date: String,
}

/// A product's details as the data API returns them.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) face: String,
    pub(crate) price: Number,
    pub(crate) size: Number,
}

/// One entry of the answer: the product, and who bought it.
#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct PopularPurchase {
    pub(crate) id: i64,
    pub(crate) face: String,
    pub(crate) price: Number,
    pub(crate) size: Number,
    /// Buyers in the order the data API listed them, each once.
    pub(crate) recent: Vec<String>,
}

/// The `n` newest purchases. The upstream's order is not trusted: dates are
/// compared as instants (offsets differ in text); unparseable ones go last,
/// by text. Equal dates keep the upstream's order.
pub(crate) fn most_recent(mut purchases: Vec<Purchase>, n: usize) -> Vec<Purchase> {
    purchases.sort_by(|a, b| (instant(&b.date), &b.date).cmp(&(instant(&a.date), &a.date)));
    purchases.truncate(n);
    purchases
}

/// Each product bought, once, in order of first appearance.
pub(crate) fn distinct_products(purchases: &[Purchase]) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::with_capacity(purchases.len());
    for purchase in purchases {
        if !ids.contains(&purchase.product_id) {
            ids.push(purchase.product_id);
        }
    }
    ids
}

/// One entry per product with all its purchases: most purchases first (a
/// user who bought twice counts twice), ties by product id ascending.
pub(crate) fn rank(products: Vec<(Product, Vec<Purchase>)>) -> Vec<PopularPurchase> {
    let mut counted: Vec<(usize, PopularPurchase)> = products
        .into_iter()
        .map(|(product, purchases)| {
            let mut recent: Vec<String> = Vec::with_capacity(purchases.len());
            for purchase in &purchases {
                if !recent.contains(&purchase.username) {
                    recent.push(purchase.username.clone());
                }
            }
            let entry = PopularPurchase {
                id: product.id,
                face: product.face,
                price: product.price,
                size: product.size,
                recent,
            };
            (purchases.len(), entry)
        })
        .collect();
    counted.sort_by_key(|(count, entry)| (Reverse(*count), entry.id));
    counted.into_iter().map(|(_, entry)| entry).collect()
}

/// A date as an instant: RFC 3339, or `YYYY-MM-DD HH:MM:SS` taken as UTC.
fn instant(date: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(date)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(username: &str, product_id: i64, date: &str) -> Purchase {
        Purchase { username: username.into(), product_id, date: date.into() }
    }

    fn product(id: i64) -> Product {
        Product { id, face: format!("face {id}"), price: Number::from(100 + id), size: Number::from(id % 40) }
    }

    fn ids(entries: &[PopularPurchase]) -> Vec<i64> {
        entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn most_recent_compares_instants_not_text() {
        let purchases = vec![
            purchase("a", 1, "2017-04-09T20:15:28.881899+00:00"),
            // Later as text, earlier as an instant (19:00 UTC).
            purchase("a", 2, "2017-04-09T21:00:00+02:00"),
            purchase("a", 3, "2017-04-12T09:21:35.882128+00:00"),
        ];
        let recent = most_recent(purchases, 5);
        assert_eq!(recent.iter().map(|p| p.product_id).collect::<Vec<_>>(), [3, 1, 2]);
    }

    #[test]
    fn most_recent_keeps_the_newest_n_and_puts_unparseable_dates_last() {
        let purchases = vec![
            purchase("a", 1, "yesterday"),
            purchase("a", 2, "2017-04-01T00:00:00Z"),
            purchase("a", 3, "2017-04-03 00:00:00"),
            purchase("a", 4, "2017-04-02T00:00:00Z"),
        ];
        let recent = most_recent(purchases, 3);
        assert_eq!(recent.iter().map(|p| p.product_id).collect::<Vec<_>>(), [3, 4, 2]);
    }

    #[test]
    fn distinct_products_keeps_first_appearance() {
        let purchases = vec![purchase("a", 7, "d"), purchase("a", 3, "d"), purchase("a", 7, "d")];
        assert_eq!(distinct_products(&purchases), [7, 3]);
    }

    #[test]
    fn rank_dedupes_buyers_in_upstream_order() {
        let purchases = vec![purchase("zoe", 1, "d"), purchase("amy", 1, "d"), purchase("zoe", 1, "d")];
        let ranked = rank(vec![(product(1), purchases)]);
        assert_eq!(ranked[0].recent, ["zoe", "amy"]);
        assert_eq!(ranked[0].face, "face 1");
    }

    #[test]
    fn rank_counts_every_purchase_and_breaks_ties_by_id() {
        // Product 5: two buyers, three purchases; product 2: three buyers.
        let five = vec![purchase("a", 5, "d"), purchase("a", 5, "d"), purchase("b", 5, "d")];
        let two = vec![purchase("a", 2, "d"), purchase("b", 2, "d"), purchase("c", 2, "d")];
        let nine = vec![purchase("a", 9, "d")];
        let ranked = rank(vec![(product(9), nine), (product(5), five), (product(2), two)]);
        assert_eq!(ids(&ranked), [2, 5, 9]);
        assert_eq!(ranked[1].recent, ["a", "b"]);
    }

    #[test]
    fn rank_of_nothing_is_empty() {
        assert!(rank(Vec::new()).is_empty());
    }

    #[test]
    fn entries_serialize_in_the_spec_shape() {
        let product =
            Product { id: 555622, face: "。◕‿◕。".into(), price: Number::from(1100), size: Number::from(27) };
        let ranked =
            rank(vec![(product, vec![purchase("Frannie79", 555622, "d"), purchase("Hortense6", 555622, "d")])]);
        assert_eq!(
            serde_json::to_value(&ranked).unwrap(),
            serde_json::json!([
                {"id": 555622, "face": "。◕‿◕。", "price": 1100, "size": 27, "recent": ["Frannie79", "Hortense6"]}
            ])
        );
    }
}
