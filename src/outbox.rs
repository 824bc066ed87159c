//! Delivering stored replies: at least once, in order per conversation,
//! with an idempotency key receivers use to drop repeats.
//!
//! The loop takes each conversation's oldest due reply, reserves it for a
//! lease (so a crash or a second replica cannot send it twice at once),
//! sends it through its channel and records the result: delivered; retried
//! later with capped exponential backoff and jitter (or when the receiver's
//! `Retry-After` says); or, after `max_attempts`, dead-lettered with the
//! conversation handed to a person. A restart finds pending rows in the
//! store and carries on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::backoff;
use crate::channel::Channels;
use crate::config::OutboxConfig;
use crate::metrics::{ChannelLabel, Metrics};
use crate::model::{Delivery, now_ms};
use crate::store::Store;

pub struct Outbox {
    pub store: Store,
    pub channels: Arc<Channels>,
    pub metrics: Arc<Metrics>,
    pub config: OutboxConfig,
    pub wake: Arc<Notify>,
}

impl Outbox {
    /// Runs until `stop` turns true, then lets deliveries in flight finish.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut in_flight: JoinSet<i64> = JoinSet::new();
        let mut busy: HashSet<i64> = HashSet::new();
        let poll = Duration::from_millis(self.config.poll_ms);
        loop {
            if *stop.borrow() {
                break;
            }
            let room = self.config.concurrency.saturating_sub(in_flight.len());
            let mut next_wait = poll;
            if room > 0 {
                match self.store.due_deliveries(now_ms(), (room * 2) as i64).await {
                    Ok(due) => {
                        let ready: Vec<Delivery> = due
                            .into_iter()
                            .filter(|d| !busy.contains(&d.conversation_id))
                            .take(room)
                            .collect();
                        for delivery in ready {
                            let now = now_ms();
                            let lease_until = now + self.config.lease_ms as i64;
                            match self
                                .store
                                .claim_delivery(delivery.outbox_id, now, lease_until)
                                .await
                            {
                                Ok(true) => {
                                    busy.insert(delivery.conversation_id);
                                    let this = self.clone();
                                    in_flight.spawn(async move {
                                        let conversation = delivery.conversation_id;
                                        this.attempt(delivery).await;
                                        conversation
                                    });
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    tracing::error!(error = %e, "outbox: cannot reserve a delivery")
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "outbox: cannot read due deliveries"),
                }
                if let Ok(Some(next)) = self.store.next_due_at().await {
                    let until = Duration::from_millis((next - now_ms()).max(0) as u64);
                    next_wait = next_wait.min(until.max(Duration::from_millis(5)));
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(next_wait) => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    match done {
                        Ok(conversation) => { busy.remove(&conversation); }
                        Err(e) => tracing::error!(error = %e, "outbox: delivery task failed"),
                    }
                }
                _ = stop.changed() => {}
            }
        }
        // Finish what is in flight; anything else stays pending in the store
        // for the next start (its lease, if any, simply runs out).
        while let Some(done) = in_flight.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "outbox: delivery task failed");
            }
        }
    }

    async fn attempt(&self, delivery: Delivery) {
        let started = Instant::now();
        let result = self.channels.deliver(&delivery).await;
        self.metrics
            .delivery_seconds
            .observe(started.elapsed().as_secs_f64());
        let attempts = delivery.attempts + 1;
        let outcome = match result {
            Ok(()) => {
                self.metrics
                    .messages_out
                    .get_or_create(&ChannelLabel {
                        channel: delivery.channel.clone(),
                    })
                    .inc();
                self.store
                    .delivered(delivery.outbox_id)
                    .await
                    .map(|_| "delivered")
            }
            Err(err) if err.permanent || attempts >= self.config.max_attempts => {
                tracing::warn!(
                    channel = %delivery.channel,
                    outbox = delivery.outbox_id,
                    attempts,
                    error = %err,
                    "giving up on a reply; the conversation goes to a person"
                );
                self.metrics.escalation("delivery_failed");
                self.store
                    .dead_letter(
                        &delivery,
                        attempts,
                        &err.message,
                        crate::pipeline::reply_deadline_ms(&self.channels, &delivery.channel),
                    )
                    .await
                    .map(|_| "dead")
            }
            Err(err) => {
                let wait = err.retry_after.unwrap_or_else(|| {
                    backoff::delay(
                        attempts,
                        Duration::from_millis(self.config.retry_base_ms),
                        Duration::from_millis(self.config.retry_max_ms),
                        backoff::jitter(),
                    )
                });
                tracing::info!(
                    channel = %delivery.channel,
                    outbox = delivery.outbox_id,
                    attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %err,
                    "delivery failed; will retry"
                );
                self.store
                    .retry_later(
                        delivery.outbox_id,
                        attempts,
                        now_ms() + wait.as_millis() as i64,
                        &err.message,
                    )
                    .await
                    .map(|_| "retry")
            }
        };
        match outcome {
            Ok(label) => self.metrics.delivery(&delivery.channel, label),
            // The lease runs out and the delivery is tried again.
            Err(e) => {
                tracing::error!(outbox = delivery.outbox_id, error = %e, "outbox: cannot record a delivery result")
            }
        }
    }
}
