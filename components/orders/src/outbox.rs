//! The outbox (SPEC §5). An order's `order_created` message is a job,
//! enqueued in the order's own transaction: no order without its message,
//! no message without its order. The job publishes
//! `{"type": "order_created", "order": {...}}` to hub topic `orders`
//! (`WS /ws/orders/`) and then marks the order published; a failure is
//! retried by the queue with backoff, and an order whose job keeps failing
//! stays listed in the operator view `unpublished`.

use serde_json::{Value as Json, json};
use wharf_guest::job_handler::Job;
use wharf_guest::queue::{self, EnqueueOptions};
use wharf_guest::store::{self, Value};

/// The queue the announcements wait on.
pub(crate) const QUEUE: &str = "order_created";
/// The hub topic they go to.
pub(crate) const TOPIC: &str = "orders";

/// Enqueues the announcement of order `order_id` (call inside its transaction).
pub(crate) fn enqueue(order_id: i64) -> Result<i64, queue::Error> {
    let options =
        EnqueueOptions { delay_ms: None, max_attempts: None, idempotency_key: Some(format!("order-{order_id}")) };
    queue::enqueue(QUEUE, &json!({ "order_id": order_id }).to_string(), &options)
}

/// Delivers one announcement. At least once: if the host dies between the
/// publish and the update, the job runs again and the message goes out
/// twice (clients de-duplicate by `order.id`); once the order is marked
/// published, a redelivery publishes nothing.
pub(crate) fn deliver(job: &Job) -> Result<(), String> {
    let order_id = serde_json::from_str::<Json>(&job.payload)
        .ok()
        .and_then(|payload| payload["order_id"].as_i64())
        .ok_or_else(|| format!("job {} has no `order_id` in its payload `{}`", job.id, job.payload))?;
    let Some(mut order) =
        crate::orders::find(order_id).map_err(|e| format!("could not read order {order_id}: {e:?}"))?
    else {
        wharf_guest::warn!("order {order_id} does not exist; nothing to announce");
        return Ok(());
    };
    if order["published"] == Json::Bool(true) {
        return Ok(());
    }
    // The order as it stands once this message is out, so the message and a
    // later `GET /v1/order/{id}` agree.
    order["published"] = Json::Bool(true);
    let message = json!({ "type": "order_created", "order": order });
    wharf_guest::hub::publish(TOPIC, &message.to_string())
        .map_err(|e| format!("could not publish order {order_id} to `{TOPIC}`: {e:?}"))?;
    store::execute(
        "UPDATE orders SET published = 1, published_at = $1 WHERE id = $2",
        &[
            Value::Text(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            Value::Integer(order_id),
        ],
    )
    .map_err(|e| format!("order {order_id} was published but could not be marked so: {e:?}"))?;
    wharf_guest::info!("order {order_id} published to `{TOPIC}` (attempt {})", job.attempt);
    Ok(())
}
