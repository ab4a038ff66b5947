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
}
