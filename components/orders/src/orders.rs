//! Orders: create (validate, look the user and the product up at once,
//! store the order with its outbox job), get, list, and the operator view of
//! orders not yet published.

use std::pin::pin;

use futures_util::future::{Either, select};
use serde_json::{Map, Number, Value as Json, json};
use wharf_guest::queue::{self, JobStatus};
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use wharf_guest::reply::{self, Page, Reply};

use crate::outbox;
use crate::upstream::{Customer, Lookup, Product, Upstreams};

const SELECT: &str = "SELECT id, user_id, product_code, customer_fullname, product_name, total_amount, created_at, published, job_id FROM orders";

/// Longest `user_id` or `product_code` accepted.
const MAX_ID_CHARS: usize = 200;

/// A valid `POST /v1/order` body.
struct NewOrder {
    user_id: String,
    product_code: String,
}

/// `POST /v1/order`.
pub(crate) async fn create(body: &[u8], request_id: &str) -> Reply {
    match try_create(body, request_id).await {
        Ok(order) => Reply::created(format!("/v1/order/{}", order["id"]), order),
        Err(reply) => reply,
    }
}

async fn try_create(body: &[u8], request_id: &str) -> Result<Json, Reply> {
    let new = validate(body)?;
    let upstreams = Upstreams::from_config(request_id)?;
    let (customer, product) = look_up(&upstreams, &new).await?;
    let order = insert(&new, &customer, &product).map_err(|e| {
        wharf_guest::error!("the order could not be stored: {e}");
        Reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The store is unavailable; retry shortly.")
    })?;
    wharf_guest::info!("order {} created: user `{}`, product `{}`", order["id"], new.user_id, new.product_code);
    Ok(order)
}

/// The body's `user_id` and `product_code`; `Err` is the 400 to answer.
fn validate(body: &[u8]) -> Result<NewOrder, Reply> {
    let Json::Object(object) = reply::json_body(body)? else {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body must be a JSON object: {\"user_id\": \"…\", \"product_code\": \"…\"}.",
        ));
    };
    let mut bad = Map::new();
    // Trimmed, like the seed's serializer fields.
    let mut field = |key: &str| match object.get(key).map(|v| v.as_str().map(str::trim)) {
        Some(Some(s)) if !s.is_empty() && s.chars().count() <= MAX_ID_CHARS && !s.contains(char::is_control) => {
            Some(s.to_owned())
        }
        Some(Some(_)) => {
            bad.insert(
                key.into(),
                format!("must be a non-empty string of at most {MAX_ID_CHARS} characters, without control characters")
                    .into(),
            );
            None
        }
        Some(None) => {
            bad.insert(key.into(), "must be a string".into());
            None
        }
        None => {
            bad.insert(key.into(), "is required".into());
            None
        }
    };
    let user_id = field("user_id");
    let product_code = field("product_code");
    match (user_id, product_code) {
        (Some(user_id), Some(product_code)) => Ok(NewOrder { user_id, product_code }),
        _ => Err(Reply::invalid_fields(bad)),
    }
}

/// Both look-ups at once, so the slower one, not their sum, sets the wait.
/// The answer does not depend on which finishes first: an unknown user
/// (422) wins, so it settles the answer without waiting for the product;
/// then an unknown product (422); then a failure (5xx).
async fn look_up(upstreams: &Upstreams, new: &NewOrder) -> Result<(Customer, Product), Reply> {
    let customer = pin!(upstreams.customer(&new.user_id));
    let product = pin!(upstreams.product(&new.product_code));
    let (customer, product) = match select(customer, product).await {
        Either::Left((Lookup::Unknown, _)) => return Err(unknown_user(&new.user_id)),
        Either::Left((customer, product)) => (customer, product.await),
        Either::Right((product, customer)) => (customer.await, product),
    };
    match (customer, product) {
        (Lookup::Unknown, _) => Err(unknown_user(&new.user_id)),
        (_, Lookup::Unknown) => Err(unknown_product(&new.product_code)),
        (Lookup::Failed(reply), _) | (_, Lookup::Failed(reply)) => Err(reply),
        (Lookup::Found(customer), Lookup::Found(product)) => Ok((customer, product)),
    }
}

fn unknown_user(user_id: &str) -> Reply {
    Reply::error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_user",
        format!("The user service knows no user `{user_id}`; nothing was stored."),
    )
}

fn unknown_product(code: &str) -> Reply {
    Reply::error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_product",
        format!("The product service knows no product `{code}`; nothing was stored."),
    )
}

/// The order and its outbox job in one transaction: both or neither.
fn insert(new: &NewOrder, customer: &Customer, product: &Product) -> Result<Json, String> {
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    store::begin().map_err(|e| format!("begin: {e:?}"))?;
    let written = (|| {
        let rows = store::query(
            "INSERT INTO orders (user_id, product_code, customer_fullname, product_name, total_amount, created_at, published)
             VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING id",
            &[
                Value::Text(new.user_id.clone()),
                Value::Text(new.product_code.clone()),
                Value::Text(customer.full_name.clone()),
                Value::Text(product.name.clone()),
                Value::Text(product.price.to_string()),
                Value::Text(created_at.clone()),
            ],
        )
        .map_err(|e| format!("insert: {e:?}"))?;
        let Some(Value::Integer(id)) = rows.rows.first().and_then(|row| row.first()).cloned() else {
            return Err("insert returned no id".to_owned());
        };
        let job_id = outbox::enqueue(id).map_err(|e| format!("enqueue: {e:?}"))?;
        store::execute("UPDATE orders SET job_id = $1 WHERE id = $2", &[Value::Integer(job_id), Value::Integer(id)])
            .map_err(|e| format!("job id: {e:?}"))?;
        store::commit().map_err(|e| format!("commit: {e:?}"))?;
        Ok(id)
    })();
    let id = written.inspect_err(|_| {
        // The host rolls back at the end of the request anyway; say it here.
        let _ = store::rollback();
    })?;
    Ok(json!({
        "id": id,
        "user_id": new.user_id,
        "product_code": new.product_code,
        "customer_fullname": customer.full_name,
        "product_name": product.name,
        "total_amount": product.price,
        "created_at": created_at,
        "published": false,
    }))
}

/// The order with `id`, as the API shows it.
pub(crate) fn find(id: i64) -> Result<Option<Json>, store::Error> {
    let rows = store::query(&format!("{SELECT} WHERE id = $1"), &[Value::Integer(id)])?;
    Ok(rows.rows.first().map(|row| to_json(row)))
}

/// `GET /v1/order/{id}`.
pub(crate) fn get(id: &str) -> Reply {
    let Some(order_id) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return Reply::not_found(format!("No order has id `{id}`; ids are positive integers."));
    };
    match find(order_id) {
        Ok(Some(order)) => Reply::ok(order),
        Ok(None) => Reply::no_such("order", id),
        Err(e) => Reply::storage_unavailable(&e),
    }
}

/// `GET /v1/orders?user_id=&limit=&offset=`: newest first.
pub(crate) fn list(query: &str) -> Reply {
    let params = reply::query_params(query);
    let mut bad = Map::new();
    let page = reply::page(&params, &mut bad);
    let mut filter = String::new();
    let mut args = Vec::new();
    if let Some(user_id) = params.get("user_id").and_then(Json::as_str) {
        if user_id.is_empty() {
            bad.insert("user_id".into(), "must not be empty".into());
        }
        args.push(Value::Text(user_id.to_owned()));
        filter = " WHERE user_id = $1".to_owned();
    }
    if !bad.is_empty() {
        return Reply::invalid_fields(bad);
    }
    listing(&filter, "id DESC", args, page, false)
}

/// `GET /v1/_ops/unpublished?limit=&offset=`, the operator view
/// (`operator_views.unpublished`): orders whose announcement has not gone
/// out yet, oldest first, each with its outbox job's state. No public route
/// reaches it; the operator API calls it in-process.
pub(crate) fn unpublished(query: &str) -> Reply {
    let params = reply::query_params(query);
    let mut bad = Map::new();
    let page = reply::page(&params, &mut bad);
    if !bad.is_empty() {
        return Reply::invalid_fields(bad);
    }
    listing(" WHERE published = 0", "id ASC", Vec::new(), page, true)
}

/// One page of orders matching `filter` (over `args`), in the envelope.
fn listing(filter: &str, order: &str, mut args: Vec<Value>, page: Page, delivery: bool) -> Reply {
    let total = match store::query(&format!("SELECT COUNT(*) FROM orders{filter}"), &args) {
        Ok(rows) => match rows.rows.first().and_then(|row| row.first()) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        },
        Err(e) => return Reply::storage_unavailable(&e),
    };
    let n = args.len();
    args.extend([Value::Integer(page.limit), Value::Integer(page.offset)]);
    let sql = format!("{SELECT}{filter} ORDER BY {order} LIMIT ${} OFFSET ${}", n + 1, n + 2);
    match store::query(&sql, &args) {
        Ok(rows) => {
            let items = rows
                .rows
                .iter()
                .map(|row| {
                    let mut order = to_json(row);
                    if delivery {
                        order["delivery"] = delivery_of(row.get(8));
                    }
                    order
                })
                .collect();
            page.list(items, total)
        }
        Err(e) => Reply::storage_unavailable(&e),
    }
}

/// Where the order's outbox job is: `{job_id, status, attempts, last_error}`.
fn delivery_of(job_id: Option<&Value>) -> Json {
    let Some(Value::Integer(job_id)) = job_id else { return Json::Null };
    match queue::status(*job_id) {
        Ok(Some(info)) => json!({
            "job_id": job_id,
            "status": match info.status {
                JobStatus::Queued => "queued",
                JobStatus::Running => "running",
                JobStatus::Done => "done",
                JobStatus::Dead => "dead",
            },
            "attempts": info.attempts,
            "last_error": info.last_error,
        }),
        // Done jobs are pruned after the queue's retention.
        Ok(None) => json!({"job_id": job_id, "status": "pruned"}),
        Err(e) => {
            wharf_guest::warn!("queue status of job {job_id} failed: {e:?}");
            json!({"job_id": job_id, "status": "unknown"})
        }
    }
}

/// A row of [`SELECT`] as the API shows it.
fn to_json(row: &[Value]) -> Json {
    let text = |i: usize| match row.get(i) {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    };
    let integer = |i: usize| match row.get(i) {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    };
    json!({
        "id": integer(0),
        "user_id": text(1),
        "product_code": text(2),
        "customer_fullname": text(3),
        "product_name": text(4),
        "total_amount": serde_json::from_str::<Number>(&text(5)).map_or(Json::Null, Json::Number),
        "created_at": text(6),
        "published": integer(7) != 0,
    })
}
