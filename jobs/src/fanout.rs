//! Every message to every subscriber, with backpressure instead of loss: each subscriber has a bounded buffer,
//! and a send waits while any live subscriber's buffer is full. A slow reader slows the stream down; it never
//! misses a message (a `broadcast` channel would drop the oldest, and a final result with them).

use std::sync::Mutex;

use tokio::sync::mpsc;

#[derive(Debug)]
pub struct Fanout<T> {
    capacity: usize,
    subscribers: Mutex<Vec<mpsc::Sender<T>>>,
    subscribed: tokio::sync::Notify,
}

impl<T: Clone + Send> Fanout<T> {
    /// A fan-out whose subscribers each buffer up to `capacity` messages.
    pub fn new(capacity: usize) -> Fanout<T> {
        Fanout {
            capacity: capacity.max(1),
            subscribers: Mutex::new(Vec::new()),
            subscribed: tokio::sync::Notify::new(),
        }
    }

    /// Every message sent from now on, in order; dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> mpsc::Receiver<T> {
        let (tx, rx) = mpsc::channel(self.capacity);
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        self.subscribed.notify_waiters();
        rx
    }

    /// Returns once someone has subscribed (a reader of a log waits for it, so the first messages reach it).
    pub async fn wait_for_subscriber(&self) {
        loop {
            let notified = self.subscribed.notified();
            if self.subscribers() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Hands `item` to every subscriber, waiting for room in each buffer; subscribers that are gone are dropped.
    pub async fn send(&self, item: T) {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut gone = false;
        for s in &subscribers {
            gone |= s.send(item.clone()).await.is_err();
        }
        if gone {
            self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| !s.is_closed());
        }
    }

    /// Waits until every live subscriber has taken everything sent so far out of its buffer (polling every few
    /// milliseconds, as long as it takes): after it, what was sent has been received, not only queued.
    pub async fn drained(&self) {
        loop {
            let pending = self
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|s| !s.is_closed() && s.capacity() < s.max_capacity());
            if !pending {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Subscribers listening now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|s| !s.is_closed()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_gets_every_message() {
        let fanout = std::sync::Arc::new(Fanout::new(8));
        let mut slow = fanout.subscribe();
        let dropped = fanout.subscribe();
        drop(dropped);
        let f = fanout.clone();
        let sender = tokio::spawn(async move {
            for i in 0..5_000u32 {
                f.send(i).await;
            }
        });
        let mut got = Vec::new();
        while got.len() < 5_000 {
            if got.len() % 500 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            got.push(slow.recv().await.expect("open"));
        }
        sender.await.expect("sender");
        assert_eq!(got, (0..5_000).collect::<Vec<_>>());
        assert_eq!(fanout.subscribers(), 1);
    }

    #[tokio::test]
    async fn drained_waits_until_every_subscriber_has_received() {
        let fanout = std::sync::Arc::new(Fanout::new(8));
        let mut rx = fanout.subscribe();
        let gone = fanout.subscribe();
        drop(gone);
        for i in 0..3u32 {
            fanout.send(i).await;
        }
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = received.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        fanout.drained().await;
        // The third was taken out after two 20 ms naps; a subscriber that is gone holds nothing up.
        assert!(received.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    }
}
