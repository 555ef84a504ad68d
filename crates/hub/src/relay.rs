//! Cross-host fan-out through PostgreSQL LISTEN/NOTIFY: every host listens on
//! one channel; a publish is sent as a notification carrying the topic, the
//! sending host's id and the message. Messages too large for a notification
//! (PostgreSQL's limit is 8000 bytes) are stored in a table and the
//! notification carries the row id instead.
//!
//! Any role can call `pg_notify`, so notifications are authenticated: an
//! HMAC-SHA256 under a host secret kept in a table no component role can
//! read, over every field, with a send time and a nonce so a captured
//! notification cannot be replayed. The channel's name is derived from the
//! secret too, so a component cannot even LISTEN to it.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::Hub;

/// How far a notification's send time may be from the receiver's clock.
const FRESHNESS: Duration = Duration::from_secs(60);
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
    /// Unix milliseconds when sent.
    sent_ms: i64,
    #[serde(borrow)]
    nonce: Cow<'a, str>,
    /// Hex HMAC-SHA256 of the fields above under the host secret.
    #[serde(borrow, default)]
    mac: Cow<'a, str>,
}

impl Envelope<'_> {
    /// The authenticated bytes: every field, length-prefixed.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let message = self.message.as_deref().unwrap_or_default();
        let row = self.row.map(|r| r.to_string()).unwrap_or_default();
        let sent = self.sent_ms.to_string();
        for field in [&*self.origin, &*self.topic, message, &row, &sent, &*self.nonce] {
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out.push(u8::from(self.message.is_some()));
        out
    }
}

/// The host secret both signs and names the channel.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl Secret {
    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    fn sign(&self, envelope: &Envelope<'_>) -> String {
        let mut mac = self.mac();
        mac.update(&envelope.signed_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, envelope: &Envelope<'_>) -> bool {
        let Ok(tag) = hex::decode(envelope.mac.as_bytes()) else { return false };
        let mut mac = self.mac();
        mac.update(&envelope.signed_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    fn channel(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"wharf hub channel");
        format!("wharf_hub_{}", &hex::encode(mac.finalize().into_bytes())[..24])
    }
}

/// Nonces seen within the freshness window, so a replay is dropped.
#[derive(Default)]
struct SeenNonces {
    order: VecDeque<(i64, String)>,
    set: HashSet<String>,
}

impl SeenNonces {
    /// Records `nonce`; false if it was seen already.
    fn first_time(&mut self, nonce: &str, now_ms: i64) -> bool {
        let horizon = now_ms - 2 * FRESHNESS.as_millis() as i64;
        while self.order.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((_, old)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        if !self.set.insert(nonce.to_owned()) {
            return false;
        }
        self.order.push_back((now_ms, nonce.to_owned()));
        true
    }
}

/// The payload a host with `secret` sends for `message` on `topic`: tests
/// use it to send genuine notifications beside forged ones.
pub fn signed_payload(secret: &[u8], origin: &str, topic: &str, message: &str, sent_ms: i64, nonce: &str) -> String {
    let secret = Secret(secret.to_vec());
    let mut envelope = Envelope {
        origin: origin.into(),
        topic: topic.into(),
        message: Some(message.into()),
        row: None,
        sent_ms,
        nonce: nonce.into(),
        mac: "".into(),
    };
    envelope.mac = secret.sign(&envelope).into();
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// The channel hosts with `secret` listen on.
pub fn channel_for(secret: &[u8]) -> String {
    Secret(secret.to_vec()).channel()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The sending half, held by the hub.
pub struct Relay {
    pool: PgPool,
    origin: String,
    secret: Secret,
    channel: String,
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
        let secret = Secret(host_secret(&pool).await?);
        let channel = secret.channel();
        Ok(Self { pool, origin: uuid::Uuid::new_v4().to_string(), secret, channel })
    }

    /// Sends a publish to the other hosts.
    pub(super) async fn send(&self, topic: &str, message: &str) -> anyhow::Result<()> {
        let (origin, topic) = (Cow::Borrowed(self.origin.as_str()), Cow::Borrowed(topic));
        let nonce: Cow<'_, str> = Cow::Owned(uuid::Uuid::new_v4().to_string());
        let sent_ms = now_ms();
        let mut envelope = Envelope {
            origin: origin.clone(),
            topic: topic.clone(),
            message: Some(Cow::Borrowed(message)),
            row: None,
            sent_ms,
            nonce: nonce.clone(),
            mac: Cow::Borrowed(""),
        };
        envelope.mac = Cow::Owned(self.secret.sign(&envelope));
        let mut payload = serde_json::to_string(&envelope)?;
        if payload.len() > INLINE_LIMIT {
            let row: i64 =
                sqlx::query_scalar("INSERT INTO public.wharf_hub_overflow (message) VALUES ($1) RETURNING id")
                    .bind(message)
                    .fetch_one(&self.pool)
                    .await?;
            envelope =
                Envelope { origin, topic, message: None, row: Some(row), sent_ms, nonce, mac: Cow::Borrowed("") };
            envelope.mac = Cow::Owned(self.secret.sign(&envelope));
            payload = serde_json::to_string(&envelope)?;
            // Old overflow rows have been read by every listener long ago.
            sqlx::query("DELETE FROM public.wharf_hub_overflow WHERE created_at < now() - interval '10 minutes'")
                .execute(&self.pool)
                .await?;
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(&self.channel).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    /// Starts listening: notifications from other hosts are published to
    /// this host's subscribers. Runs until the hub is dropped.
    pub async fn listen(hub: &Arc<Hub>) -> anyhow::Result<()> {
        let Some(relay) = &hub.relay else { return Ok(()) };
        let mut listener = PgListener::connect_with(&relay.pool).await.context("failed to start LISTEN")?;
        listener.listen(&relay.channel).await?;
        let (weak, pool, origin) = (Arc::downgrade(hub), relay.pool.clone(), relay.origin.clone());
        let secret = relay.secret.clone();
        tokio::spawn(async move { forward(listener, weak, pool, origin, secret).await });
        Ok(())
    }
}

async fn forward(mut listener: PgListener, hub: Weak<Hub>, pool: PgPool, origin: String, secret: Secret) {
    let mut seen = SeenNonces::default();
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
        let now = now_ms();
        let fresh = (now - envelope.sent_ms).unsigned_abs() <= FRESHNESS.as_millis() as u64;
        if !secret.verify(&envelope) || !fresh || !seen.first_time(&envelope.nonce, now) {
            tracing::warn!(topic = %envelope.topic, "dropping a hub notification that is forged, stale or replayed");
            wharf_metrics::global().hub_forgery_dropped();
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
            hub.publish_local(&envelope.topic, message.into()).await;
        }
    }
}

/// The host secret shared by every host on this database, made on first use
/// in a table only the host's own (administrative) role can read.
async fn host_secret(pool: &PgPool) -> anyhow::Result<Vec<u8>> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.wharf_host_secret (id INT PRIMARY KEY, secret BYTEA NOT NULL);
         REVOKE ALL ON public.wharf_host_secret FROM PUBLIC",
    )
    .execute(pool)
    .await
    .context("failed to create the host secret table")?;
    let fresh: [u8; 32] = rand::random();
    sqlx::query("INSERT INTO public.wharf_host_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(&fresh[..])
        .execute(pool)
        .await
        .context("failed to store the host secret")?;
    let secret: Vec<u8> = sqlx::query_scalar("SELECT secret FROM public.wharf_host_secret WHERE id = 1")
        .fetch_one(pool)
        .await
        .context("failed to read the host secret")?;
    anyhow::ensure!(secret.len() >= 32, "the host secret in public.wharf_host_secret is shorter than 32 bytes");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope<'a>(message: &'a str, nonce: &'a str) -> Envelope<'a> {
        Envelope {
            origin: "a".into(),
            topic: "t".into(),
            message: Some(message.into()),
            row: None,
            sent_ms: 1,
            nonce: nonce.into(),
            mac: "".into(),
        }
    }

    #[test]
    fn only_envelopes_signed_with_the_secret_verify() {
        let secret = Secret(vec![7; 32]);
        let mut good = envelope("hello", "n1");
        good.mac = secret.sign(&good).into();
        assert!(secret.verify(&good));
        let mut tampered = envelope("hellO", "n1");
        tampered.mac = good.mac.clone();
        assert!(!secret.verify(&tampered));
        let mut other_key = envelope("hello", "n1");
        other_key.mac = Secret(vec![8; 32]).sign(&other_key).into();
        assert!(!secret.verify(&other_key));
        assert!(!secret.verify(&envelope("hello", "n1")), "unsigned");
        assert_ne!(secret.channel(), Secret(vec![8; 32]).channel());
    }

    #[test]
    fn a_nonce_is_accepted_once() {
        let mut seen = SeenNonces::default();
        assert!(seen.first_time("n", 1_000));
        assert!(!seen.first_time("n", 2_000));
        assert!(seen.first_time("n", 1_000 + 3 * FRESHNESS.as_millis() as i64));
    }
}
