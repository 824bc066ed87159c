//! Delivering stored notices: lease, send, record; retried with capped
//! exponential backoff and jitter (or the receiver's `Retry-After`) using
//! the `[outbox]` retry settings; dead after `outbox.max_attempts`. A
//! restart finds pending rows in the store and carries on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::Clock;
use super::send::send;
use crate::backoff;
use crate::channel::DeliveryError;
use crate::config::{Config, NotifyTarget, OutboxConfig};
use crate::metrics::Metrics;
use crate::store::{PendingNotification, Store};

/// Longest sleep without a wake-up: picks up leases another replica let
/// run out.
const IDLE_CHECK: Duration = Duration::from_secs(30);

pub struct Notifier {
    store: Store,
    http: reqwest::Client,
    targets: BTreeMap<String, NotifyTarget>,
    metrics: Arc<Metrics>,
    /// Retry, lease and concurrency settings, shared with reply delivery.
    retry: OutboxConfig,
    clock: Clock,
    /// Signalled when notices are stored, so they go out at once.
    wake: Arc<Notify>,
}

impl Notifier {
    /// `http`: the client replies use (`Channels::http`): its timeout and
    /// user agent suit notices too.
    pub fn new(
        store: Store,
        http: reqwest::Client,
        config: &Config,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Arc<Notifier> {
        Arc::new(Notifier {
            store,
            http,
            targets: config.notify.targets.clone(),
            metrics,
            retry: config.outbox.clone(),
            clock,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Signal this after storing notices (the [`super::SlaWatcher`] does).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `stop` turns true, then lets deliveries in flight finish.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let room = self.retry.concurrency.saturating_sub(in_flight.len());
            let mut wait_until = self.clock.now_ms() + IDLE_CHECK.as_millis() as i64;
            // A store in trouble is not hammered: at least a second between tries.
            let mut trouble = false;
            if room > 0 {
                let now = self.clock.now_ms();
                match self.store.due_notifications(now, room as i64).await {
                    Ok(due) => {
                        for notice in due {
                            let until = now + self.retry.lease_ms as i64;
                            match self.store.claim_notification(notice.id, now, until).await {
                                Ok(true) => {
                                    let this = self.clone();
                                    in_flight.spawn(async move { this.attempt(notice).await });
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    trouble = true;
                                    tracing::error!(error = %e, "notifier: cannot reserve a notice")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        trouble = true;
                        tracing::error!(error = %e, "notifier: cannot read due notices")
                    }
                }
                match self.store.next_notification_due().await {
                    Ok(Some(next)) => wait_until = wait_until.min(next),
                    Ok(None) => {}
                    Err(e) => {
                        trouble = true;
                        tracing::error!(error = %e, "notifier: cannot read due notices")
                    }
                }
                if trouble {
                    wait_until = wait_until.max(self.clock.now_ms() + 1000);
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(self.clock.instant_at(wait_until)) => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "notifier: delivery task failed");
                    }
                }
                _ = stop.changed() => {}
            }
        }
        // Anything not in flight stays pending for the next start.
        while let Some(done) = in_flight.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "notifier: delivery task failed");
            }
        }
    }

    async fn attempt(&self, notice: PendingNotification) {
        let attempts = notice.attempts + 1;
        let result = match self.targets.get(&notice.target) {
            Some(target) => {
                send(
                    &self.http,
                    target,
                    &notice.body,
                    &notice.idempotency_key,
                    // Receivers check signatures against real time.
                    crate::model::now_ms(),
                )
                .await
            }
            None => Err(DeliveryError {
                message: format!(
                    "notify target `{}` is no longer configured; add [notify.targets.{}] back to deliver its notices",
                    notice.target, notice.target
                ),
                retry_after: None,
                permanent: true,
            }),
        };
        let recorded = match result {
            Ok(()) => self
                .store
                .notification_delivered(notice.id, attempts, self.clock.now_ms())
                .await
                .map(|_| "delivered"),
            Err(err) if err.permanent || attempts >= self.retry.max_attempts => {
                tracing::warn!(
                    target_name = %notice.target,
                    notification = notice.id,
                    ticket = notice.ticket_id,
                    event = %notice.event,
                    attempts,
                    error = %err,
                    "giving up on a notice; check the notify target"
                );
                self.store
                    .notification_dead(notice.id, attempts, &err.message)
                    .await
                    .map(|_| "dead")
            }
            Err(err) => {
                let wait = err.retry_after.unwrap_or_else(|| {
                    backoff::delay(
                        attempts,
                        Duration::from_millis(self.retry.retry_base_ms),
                        Duration::from_millis(self.retry.retry_max_ms),
                        backoff::jitter(),
                    )
                });
                tracing::info!(
                    target_name = %notice.target,
                    notification = notice.id,
                    attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %err,
                    "notice not delivered; will retry"
                );
                self.store
                    .notification_retry(
                        notice.id,
                        attempts,
                        self.clock.now_ms() + wait.as_millis() as i64,
                        &err.message,
                    )
                    .await
                    .map(|_| "retry")
            }
        };
        match recorded {
            Ok(outcome) => self.metrics.notification(&notice.target, outcome),
            // The lease runs out and the notice is tried again.
            Err(e) => {
                tracing::error!(notification = notice.id, error = %e, "notifier: cannot record a delivery result")
            }
        }
    }
}
