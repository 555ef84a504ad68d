//! The WebSocket hub: topics, their subscribers, and `wharf:host/hub`.
//!
//! Publishing hands the message to its topic's fan-out task and returns: the
//! publisher pays O(1) however many clients listen. The task delivers to
//! every subscriber through a bounded per-client buffer, `try_send` only, so
//! a client that cannot keep up is dropped (and told why) instead of delaying
//! anyone. Fan-out and clients run on the hub's own, lower-priority threads
//! ([`delivery`]). With PostgreSQL, [`relay`] carries publishes to the other hosts
//! sharing the database. A publish made inside an open store transaction is
//! held until the transaction commits, and dropped if it rolls back.

#![deny(missing_docs)]

pub mod delivery;
pub mod relay;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wasmtime::component::{HasData, Linker};

use wharf_bindings::hub::{self, Error, Host};
use wharf_spec::ComponentName;
use wharf_store::StoreCtx;

/// Largest message a component may publish.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Messages a topic holds for its fan-out task before publishers wait.
const OUTBOX: usize = 4096;

/// Messages the fan-out task offers before it lets the clients drain them.
const FAN_OUT_BATCH: usize = 32;

/// A message as every subscriber receives it: one buffer, shared by all
/// clients and framed as WebSocket text without a copy.
pub type HubMessage = Utf8Bytes;

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<HubMessage>,
    /// Fired when the subscriber is dropped for being too slow.
    kick: Option<oneshot::Sender<()>>,
}

type Subscribers = Arc<Mutex<Vec<Subscriber>>>;

/// A topic with at least one subscriber, and the way into its fan-out task.
/// Dropping it (when its last subscriber leaves) closes the outbox, and the
/// task ends once it has delivered what was already published.
struct Topic {
    subscribers: Subscribers,
    outbox: mpsc::Sender<HubMessage>,
}

/// One client's subscription; dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<Hub>,
    topic: String,
    id: u64,
    /// Messages, in publish order.
    pub messages: mpsc::Receiver<HubMessage>,
    /// Resolves if the hub dropped this client for falling behind.
    pub kicked: oneshot::Receiver<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.topic, self.id);
    }
}

/// All topics of this host.
pub struct Hub {
    topics: RwLock<HashMap<String, Topic>>,
    delivery: delivery::Delivery,
    next_id: AtomicU64,
    relay: Option<relay::Relay>,
}

impl Hub {
    /// A hub with its delivery thread; with `relay`, publishes also reach
    /// other hosts.
    pub fn new(relay: Option<relay::Relay>) -> std::io::Result<Arc<Self>> {
        let delivery = delivery::Delivery::start()?;
        Ok(Arc::new(Self { topics: RwLock::default(), delivery, next_id: AtomicU64::new(1), relay }))
    }

    /// Where a subscriber's connection is served: the hub's threads.
    pub fn delivery(&self) -> &delivery::Delivery {
        &self.delivery
    }

    /// Subscribes to `topic` with room for `buffer` undelivered messages.
    /// The first subscriber of a topic starts its fan-out task.
    pub fn subscribe(self: &Arc<Self>, topic: &str, buffer: usize) -> Subscription {
        let (tx, messages) = mpsc::channel(buffer.max(1));
        let (kick, kicked) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut topics) = self.topics.write() {
            let topic = topics.entry(topic.to_owned()).or_insert_with(|| Topic::start(topic, &self.delivery));
            lock(&topic.subscribers).push(Subscriber { id, tx, kick: Some(kick) });
        }
        Subscription { hub: self.clone(), topic: topic.to_owned(), id, messages, kicked }
    }

    /// Subscribers of each topic.
    pub fn client_counts(&self) -> Vec<(String, usize)> {
        self.topics
            .read()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), lock(&v.subscribers).len())).collect())
            .unwrap_or_default()
    }

    /// Hands `message` to the fan-out of this host's subscribers of `topic`.
    /// Waits only when the topic's outbox is full, never for the clients.
    pub async fn publish_local(&self, topic: &str, message: HubMessage) {
        let outbox = self.topics.read().ok().and_then(|t| t.get(topic).map(|t| t.outbox.clone()));
        if let Some(outbox) = outbox {
            // Closed only if the last subscriber left meanwhile: nobody to tell.
            let _ = outbox.send(message).await;
        }
    }

    /// Delivers here and, through the relay, on every other host.
    pub async fn publish(&self, topic: &str, message: HubMessage) -> Result<(), Error> {
        self.publish_local(topic, message.clone()).await;
        if let Some(relay) = &self.relay {
            relay.send(topic, &message).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        }
        Ok(())
    }

    fn unsubscribe(&self, topic: &str, id: u64) {
        if let Ok(mut topics) = self.topics.write()
            && let Some(entry) = topics.get(topic)
        {
            let mut subscribers = lock(&entry.subscribers);
            subscribers.retain(|s| s.id != id);
            let empty = subscribers.is_empty();
            drop(subscribers);
            if empty {
                topics.remove(topic);
            }
        }
    }
}

impl Topic {
    fn start(name: &str, delivery: &delivery::Delivery) -> Self {
        let subscribers = Subscribers::default();
        let (outbox, messages) = mpsc::channel(OUTBOX);
        let span = tracing::debug_span!("hub.fan_out", topic = name);
        delivery.spawn(tracing::Instrument::instrument(fan_out(subscribers.clone(), messages), span));
        Self { subscribers, outbox }
    }
}

/// A topic's fan-out task: takes what was published, in order, and offers
/// each message to every subscriber; one whose buffer is full is dropped.
async fn fan_out(subscribers: Subscribers, mut messages: mpsc::Receiver<HubMessage>) {
    let mut batch = Vec::with_capacity(FAN_OUT_BATCH);
    while messages.recv_many(&mut batch, FAN_OUT_BATCH).await > 0 {
        let dropped = offer(&subscribers, &mut batch);
        if dropped > 0 {
            tracing::info!(clients = dropped, "dropping clients that fell behind");
        }
        // Clients share these threads: let them write what they were given
        // before offering more, or a burst alone would overflow fast clients.
        tokio::task::yield_now().await;
    }
}

/// Offers each message of `batch` to every subscriber, dropping those whose
/// buffer is full; returns how many were dropped.
fn offer(subscribers: &Mutex<Vec<Subscriber>>, batch: &mut Vec<HubMessage>) -> usize {
    let mut subscribers = lock(subscribers);
    let before = subscribers.len();
    for message in batch.drain(..) {
        subscribers.retain_mut(|subscriber| match subscriber.tx.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(kick) = subscriber.kick.take() {
                    let _ = kick.send(());
                }
                false
            }
            // The client is gone; its Subscription's drop tidies up.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }
    before - subscribers.len()
}

/// The subscriber list, also after a panic elsewhere poisoned its lock: the
/// list itself is always consistent (every change is a single push/retain).
fn lock(subscribers: &Mutex<Vec<Subscriber>>) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
    subscribers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Per-request state of the hub capability.
#[derive(Clone)]
pub struct HubCtx {
    component: ComponentName,
    hub: Arc<Hub>,
    topics: Arc<BTreeSet<String>>,
}

impl HubCtx {
    /// `component` publishing through `hub` to `topics`.
    pub fn new(component: ComponentName, hub: Arc<Hub>, topics: Arc<BTreeSet<String>>) -> Self {
        Self { component, hub, topics }
    }
}

/// What `hub.publish` works with: the hub, and the request's store, whose
/// open transaction a publish waits for.
pub struct HubView<'a> {
    hub: &'a HubCtx,
    store: &'a mut StoreCtx,
}

impl<'a> HubView<'a> {
    /// The view of one request: its hub context and its store context.
    pub fn new(hub: &'a HubCtx, store: &'a mut StoreCtx) -> Self {
        Self { hub, store }
    }
}

impl Host for HubView<'_> {
    #[tracing::instrument(skip_all, name = "hub.publish", fields(topic = %topic))]
    async fn publish(&mut self, topic: String, message: String) -> Result<(), Error> {
        let HubCtx { component, hub, topics } = self.hub;
        if !topics.contains(&topic) {
            return Err(Error::NotAllowed(format!(
                "component `{}` may not publish to `{topic}`: list it in the publishers of a [websockets] entry with that topic",
                component
            )));
        }
        if message.len() > MAX_MESSAGE {
            return Err(Error::TooLarge(format!("messages are at most {MAX_MESSAGE} bytes")));
        }
        if self.store.in_transaction() {
            // Sent when the transaction commits; never if it rolls back.
            let hub = hub.clone();
            self.store.after_commit(Box::pin(async move {
                if let Err(e) = hub.publish(&topic, message.into()).await {
                    tracing::warn!(topic, error = ?e, "a publish made in a transaction failed after its commit");
                }
            }));
            return Ok(());
        }
        hub.publish(&topic, message.into()).await
    }
}

struct HasHub;

impl HasData for HasHub {
    type Data<'a> = HubView<'a>;
}

/// Adds `wharf:host/hub` to `linker`, reaching each store's contexts
/// through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> HubView<'_>,
) -> wasmtime::Result<()> {
    hub::add_to_linker::<T, HasHub>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_subscriber_is_dropped_without_blocking_others() {
        let hub = Hub::new(None).unwrap();
        let mut fast = hub.subscribe("t", 4);
        let mut slow = hub.subscribe("t", 2);
        for i in 0..4 {
            hub.publish_local("t", format!("m{i}").into()).await;
            assert_eq!(fast.messages.recv().await.unwrap(), format!("m{i}"));
        }
        // slow read nothing: its buffer of 2 overflowed at the third message.
        assert!((&mut slow.kicked).await.is_ok());
        assert_eq!(hub.client_counts(), vec![("t".to_owned(), 1)]);
        drop(fast);
        assert!(hub.client_counts().iter().all(|(_, n)| *n == 0));
        drop(slow);
        assert!(hub.client_counts().is_empty());
    }

    #[tokio::test]
    async fn publishing_does_not_wait_for_clients_and_keeps_order() {
        let hub = Hub::new(None).unwrap();
        // Nobody reads these until everything is published.
        let mut clients: Vec<_> = (0..100).map(|_| hub.subscribe("t", 1000)).collect();
        let _idle = hub.subscribe("other", 1);
        for i in 0..1000 {
            hub.publish_local("t", format!("m{i}").into()).await;
        }
        for client in &mut clients {
            for i in 0..1000 {
                assert_eq!(client.messages.recv().await.unwrap(), format!("m{i}"));
            }
        }
        assert_eq!(hub.client_counts().iter().find(|(t, _)| t == "t").map(|(_, n)| *n), Some(100));
    }

    #[tokio::test]
    async fn publishing_to_a_topic_without_subscribers_is_a_no_op() {
        let hub = Hub::new(None).unwrap();
        hub.publish_local("nobody", "m".into()).await;
        assert!(hub.client_counts().is_empty());
        let mut late = hub.subscribe("nobody", 1);
        hub.publish_local("nobody", "second".into()).await;
        assert_eq!(late.messages.recv().await.unwrap(), "second");
    }
}
