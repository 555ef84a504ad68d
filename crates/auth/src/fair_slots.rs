//! A fair semaphore for password hashing: a few slots, shared round-robin
//! between keys (for `verify-password`, the stored hash: one key per
//! account). A flood of logins that all check the same hash (every unknown
//! email checks one dummy hash) queues behind itself, and a real user's
//! login waits for at most one of them per free slot.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Most waiters one key may queue; more are refused at once.
const MAX_QUEUED_PER_KEY: usize = 4096;

/// Slots handed out round-robin between keys.
pub struct FairSlots {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    free: usize,
    /// Waiters per key, oldest first.
    queues: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Keys with waiters, in the order they are next served.
    turn: VecDeque<String>,
}

/// A held slot; dropping it hands the slot to the next key's waiter.
pub struct FairPermit {
    slots: Arc<FairSlots>,
}

/// The key's queue is full.
#[derive(Debug, thiserror::Error)]
#[error("too many waiters for one key")]
pub struct QueueFull;

impl FairSlots {
    /// `slots` slots.
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { free: slots.max(1), ..State::default() }) })
    }

    /// Waits for a slot, in `key`'s turn.
    pub async fn acquire(self: &Arc<Self>, key: &str) -> Result<FairPermit, QueueFull> {
        let waiting = {
            let mut state = self.state.lock().map_err(|_| QueueFull)?;
            if state.free > 0 && state.turn.is_empty() {
                state.free -= 1;
                return Ok(FairPermit { slots: self.clone() });
            }
            let (tx, rx) = oneshot::channel();
            let queue = state.queues.entry(key.to_owned()).or_default();
            if queue.len() >= MAX_QUEUED_PER_KEY {
                return Err(QueueFull);
            }
            let first = queue.is_empty();
            queue.push_back(tx);
            if first {
                state.turn.push_back(key.to_owned());
            }
            rx
        };
        // If this wait is dropped after a slot was handed to it, the guard
        // hands the slot on instead of losing it.
        let mut guard = Waiting { rx: Some(waiting), slots: self.clone() };
        let granted = match guard.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        guard.rx = None;
        // A sender dropped without sending cannot happen while the slots
        // live; treat it as refused.
        if !granted {
            return Err(QueueFull);
        }
        Ok(FairPermit { slots: self.clone() })
    }

    /// Gives a slot to the next key's oldest live waiter, or frees it.
    fn release(&self) {
        let Ok(mut state) = self.state.lock() else { return };
        while let Some(key) = state.turn.pop_front() {
            let Some(queue) = state.queues.get_mut(&key) else { continue };
            let mut handed = false;
            while let Some(waiter) = queue.pop_front() {
                if waiter.send(()).is_ok() {
                    handed = true;
                    break;
                }
            }
            if queue.is_empty() {
                state.queues.remove(&key);
            } else {
                state.turn.push_back(key);
            }
            if handed {
                return;
            }
        }
        state.free += 1;
    }
}

/// A wait in a key's queue.
struct Waiting {
    rx: Option<oneshot::Receiver<()>>,
    slots: Arc<FairSlots>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.slots.release();
            }
        }
    }
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        self.slots.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_take_turns() {
        let slots = FairSlots::new(1);
        let held = slots.acquire("flood").await.ok();
        let mut served = Vec::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..20 {
            let (slots, tx) = (slots.clone(), tx.clone());
            tokio::spawn(async move {
                let _permit = slots.acquire("flood").await;
                let _ = tx.send(format!("flood{i}"));
            });
        }
        tokio::task::yield_now().await;
        {
            let (slots, tx) = (slots.clone(), tx.clone());
            tokio::spawn(async move {
                let _permit = slots.acquire("real").await;
                let _ = tx.send("real".to_owned());
            });
        }
        tokio::task::yield_now().await;
        drop(held);
        drop(tx);
        while let Some(who) = rx.recv().await {
            served.push(who);
        }
        let real_at = served.iter().position(|w| w == "real");
        assert!(real_at.is_some_and(|at| at <= 1), "the real user waited behind the flood: {served:?}");
        assert_eq!(served.len(), 21);
    }

    #[tokio::test]
    async fn a_dropped_waiter_does_not_lose_the_slot() {
        let slots = FairSlots::new(1);
        let held = slots.acquire("a").await.ok();
        let abandoned = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire("b").await.map(drop) })
        };
        tokio::task::yield_now().await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), slots.acquire("c")).await;
        assert!(matches!(got, Ok(Ok(_))));
    }
}
