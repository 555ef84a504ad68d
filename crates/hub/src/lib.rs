//! The WebSocket hub: topics, their subscribers, and `wharf:host/hub`.
//!
//! Publishing fans a message out to every subscriber of the topic through a
//! bounded per-client buffer: `try_send` only, so a client that cannot keep
//! up is dropped (and told why) instead of delaying anyone. With PostgreSQL,
//! [`relay`] carries publishes to the other hosts sharing the database.
//! A publish made inside an open store transaction is held until the
//! transaction commits, and dropped if it rolls back.

#![deny(missing_docs)]

pub mod relay;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{HasData, Linker};

use wharf_bindings::hub::{self, Error, Host};
use wharf_spec::ComponentName;
use wharf_store::StoreCtx;

/// Largest message a component may publish.
pub const MAX_MESSAGE: usize = 1 << 20;

/// A message as every subscriber receives it (shared, not copied per client).
pub type HubMessage = Arc<str>;

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<HubMessage>,
    /// Fired when the subscriber is dropped for being too slow.
    kick: Option<oneshot::Sender<()>>,
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
        self.hub.remove(&self.topic, &[self.id]);
    }
}

/// All topics of this host.
pub struct Hub {
    topics: RwLock<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
    relay: Option<relay::Relay>,
}

impl Hub {
    /// A hub; with `relay`, publishes also reach other hosts.
    pub fn new(relay: Option<relay::Relay>) -> Arc<Self> {
        Arc::new(Self { topics: RwLock::default(), next_id: AtomicU64::new(1), relay })
    }

    /// Subscribes to `topic` with room for `buffer` undelivered messages.
    pub fn subscribe(self: &Arc<Self>, topic: &str, buffer: usize) -> Subscription {
        let (tx, messages) = mpsc::channel(buffer.max(1));
        let (kick, kicked) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut topics) = self.topics.write() {
            topics.entry(topic.to_owned()).or_default().push(Subscriber { id, tx, kick: Some(kick) });
        }
        Subscription { hub: self.clone(), topic: topic.to_owned(), id, messages, kicked }
    }

    /// Subscribers of each topic.
    pub fn client_counts(&self) -> Vec<(String, usize)> {
        self.topics.read().map(|t| t.iter().map(|(k, v)| (k.clone(), v.len())).collect()).unwrap_or_default()
    }

    /// Delivers to this host's subscribers; drops those whose buffer is full.
    pub fn publish_local(&self, topic: &str, message: HubMessage) {
        let mut slow = Vec::new();
        if let Ok(topics) = self.topics.read() {
            for subscriber in topics.get(topic).into_iter().flatten() {
                if subscriber.tx.try_send(message.clone()).is_err() {
                    slow.push(subscriber.id);
                }
            }
        }
        if !slow.is_empty() {
            tracing::info!(topic, clients = slow.len(), "dropping clients that fell behind");
            self.remove(topic, &slow);
        }
    }

    /// Delivers here and, through the relay, on every other host.
    pub async fn publish(&self, topic: &str, message: HubMessage) -> Result<(), Error> {
        self.publish_local(topic, message.clone());
        if let Some(relay) = &self.relay {
            relay.send(topic, &message).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        }
        Ok(())
    }

    fn remove(&self, topic: &str, ids: &[u64]) {
        if let Ok(mut topics) = self.topics.write()
            && let Some(subscribers) = topics.get_mut(topic)
        {
            subscribers.retain_mut(|s| {
                if !ids.contains(&s.id) {
                    return true;
                }
                if let Some(kick) = s.kick.take() {
                    let _ = kick.send(());
                }
                false
            });
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }
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
        let hub = Hub::new(None);
        let mut fast = hub.subscribe("t", 4);
        let mut slow = hub.subscribe("t", 2);
        for i in 0..4 {
            hub.publish_local("t", format!("m{i}").into());
            assert_eq!(&*fast.messages.recv().await.unwrap(), format!("m{i}"));
        }
        // slow read nothing: its buffer of 2 overflowed at the third message.
        assert!((&mut slow.kicked).await.is_ok());
        assert_eq!(hub.client_counts(), vec![("t".to_owned(), 1)]);
        drop(fast);
        assert!(hub.client_counts().is_empty());
    }
}
