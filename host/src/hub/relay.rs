//! Cross-host fan-out through PostgreSQL LISTEN/NOTIFY: every host listens on
//! one channel; a publish is sent as a notification carrying the topic, the
//! sending host's id and the message. Messages too large for a notification
//! (PostgreSQL's limit is 8000 bytes) are stored in a table and the
//! notification carries the row id instead.

use std::borrow::Cow;
use std::sync::{Arc, Weak};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::Hub;

const CHANNEL: &str = "wharf_hub";
/// Payloads up to this size travel inside the notification.
const INLINE_LIMIT: usize = 7000;

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    /// The sending host.
    #[serde(borrow)]
    origin: Cow<'a, str>,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    // Cow, not &str: a JSON message arrives escaped and cannot be borrowed.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    message: Option<Cow<'a, str>>,
    /// Row of `wharf_hub_overflow` holding the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<i64>,
}

/// The sending half, held by the hub.
pub struct Relay {
    pool: PgPool,
    origin: String,
}

impl Relay {
    /// Prepares the overflow table and returns a relay sending as a new host id.
    pub async fn new(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS public.wharf_hub_overflow (
                id BIGSERIAL PRIMARY KEY, message TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .execute(&pool)
        .await
        .context("failed to create the hub overflow table")?;
        Ok(Self { pool, origin: uuid::Uuid::new_v4().to_string() })
    }

    /// Sends a publish to the other hosts.
    pub(super) async fn send(&self, topic: &str, message: &str) -> anyhow::Result<()> {
        let (origin, topic) = (Cow::Borrowed(self.origin.as_str()), Cow::Borrowed(topic));
        let mut envelope =
            Envelope { origin: origin.clone(), topic: topic.clone(), message: Some(Cow::Borrowed(message)), row: None };
        let mut payload = serde_json::to_string(&envelope)?;
        if payload.len() > INLINE_LIMIT {
            let row: i64 =
                sqlx::query_scalar("INSERT INTO public.wharf_hub_overflow (message) VALUES ($1) RETURNING id")
                    .bind(message)
                    .fetch_one(&self.pool)
                    .await?;
            envelope = Envelope { origin, topic, message: None, row: Some(row) };
            payload = serde_json::to_string(&envelope)?;
            // Old overflow rows have been read by every listener long ago.
            sqlx::query("DELETE FROM public.wharf_hub_overflow WHERE created_at < now() - interval '10 minutes'")
                .execute(&self.pool)
                .await?;
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    /// Starts listening: notifications from other hosts are published to
    /// this host's subscribers. Runs until the hub is dropped.
    pub async fn listen(hub: &Arc<Hub>) -> anyhow::Result<()> {
        let Some(relay) = &hub.relay else { return Ok(()) };
        let mut listener = PgListener::connect_with(&relay.pool).await.context("failed to start LISTEN")?;
        listener.listen(CHANNEL).await?;
        let (weak, pool, origin) = (Arc::downgrade(hub), relay.pool.clone(), relay.origin.clone());
        tokio::spawn(async move { forward(listener, weak, pool, origin).await });
        Ok(())
    }
}

async fn forward(mut listener: PgListener, hub: Weak<Hub>, pool: PgPool, origin: String) {
    loop {
        let notification = match listener.recv().await {
            Ok(n) => n,
            Err(e) => {
                // PgListener reconnects by itself on the next recv.
                tracing::warn!(error = %e, "hub relay lost its connection; reconnecting");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(hub) = hub.upgrade() else { return };
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(notification.payload()) else {
            tracing::warn!("ignoring a malformed hub notification");
            continue;
        };
        if envelope.origin == origin {
            continue;
        }
        let message: Option<String> = match (envelope.message, envelope.row) {
            (Some(m), _) => Some(m.into_owned()),
            (None, Some(row)) => sqlx::query_scalar("SELECT message FROM public.wharf_hub_overflow WHERE id = $1")
                .bind(row)
                .fetch_optional(&pool)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read a relayed hub message");
                    None
                }),
            (None, None) => None,
        };
        if let Some(message) = message {
            hub.publish_local(&envelope.topic, message.into());
        }
    }
}
