//! The SLA watcher: finds tickets whose timers are due, and for each, in
//! one transaction, moves the timer on (a compare-and-set on the level or
//! the deadline flag) and stores one notice per interested target. Two
//! replicas may scan at once: only one compare-and-set succeeds, and the
//! idempotency keys are unique besides.
//!
//! It sleeps until the earliest timer, a wake-up (a ticket opened), or at
//! most [`IDLE_CHECK`] (timers set by another replica).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Clock;
use super::format::{self, Event, Notice, TicketFacts};
use super::sla::{deadline_due, next_step};
use crate::config::{Config, NotifyConfig, SlaConfig};
use crate::store::{NewNotification, Store, StoreError};

/// Longest sleep without a wake-up.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Pause after a store error before scanning again.
const ERROR_PAUSE: Duration = Duration::from_secs(5);
/// Tickets read per query, and queries per pass at most.
const BATCH: i64 = 100;
const MAX_ROUNDS: usize = 10;

/// What the watcher has done so far; see [`SlaWatcher::progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Scans finished.
    pub passes: u64,
    /// Notification rows stored (one per target and notice).
    pub queued: u64,
    /// When the next timer is due, Unix ms by the watcher's clock.
    pub next_due_at: Option<i64>,
}

pub struct SlaWatcher {
    store: Store,
    sla: SlaConfig,
    notify: NotifyConfig,
    clock: Clock,
    /// The notifier's wake-up: stored notices go out at once.
    deliver: Arc<Notify>,
    progress: watch::Sender<Progress>,
}

impl SlaWatcher {
    /// `deliver`: [`super::Notifier::waker`].
    pub fn new(store: Store, config: &Config, clock: Clock, deliver: Arc<Notify>) -> SlaWatcher {
        SlaWatcher {
            store,
            sla: config.sla.clone(),
            notify: config.notify.clone(),
            clock,
            deliver,
            progress: watch::Sender::new(Progress::default()),
        }
    }

    /// Updated after every scan, before the watcher sleeps.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs until `stop` turns true. `wake`: signalled (`notify_one`) when a
    /// ticket opens, so its escalation notice goes out at once.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let scanned = match self.pass().await {
                Ok(queued) => self
                    .store
                    .sla_next_due(ms(self.sla.deadline_warning))
                    .await
                    .map(|next| (queued, next)),
                Err(e) => Err(e),
            };
            let now = self.clock.now_ms();
            let next_due_at = match scanned {
                Ok((queued, next)) => {
                    self.progress.send_modify(|p| {
                        p.passes += 1;
                        p.queued += queued;
                        p.next_due_at = next;
                    });
                    next
                }
                Err(e) => {
                    tracing::error!(error = %e, "SLA watcher: cannot scan tickets; trying again shortly");
                    Some(now + ms(ERROR_PAUSE))
                }
            };
            let until =
                next_due_at.map_or(now + ms(IDLE_CHECK), |next| next.min(now + ms(IDLE_CHECK)));
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(self.clock.instant_at(until)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One scan at the clock's now; returns the notification rows stored.
    pub async fn pass(&self) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        let horizon = now.saturating_add(ms(self.sla.deadline_warning));
        let mut queued = 0u64;
        for _ in 0..MAX_ROUNDS {
            let due = self.store.sla_due(now, horizon, BATCH).await?;
            for ticket in &due {
                let (facts, times) = (&ticket.facts, &ticket.times);
                if let Some(step) = next_step(times, now, &self.sla) {
                    let notices = self.notices(step.event, facts, now, times.opened_at);
                    let done = self
                        .store
                        .sla_advance(
                            facts.id,
                            times.opened_at,
                            step.from_level,
                            step.to_level,
                            step.next_at,
                            now,
                            &notices,
                        )
                        .await?;
                    if done {
                        queued += notices.len() as u64;
                        log_notice(facts.id, step.event, notices.len());
                    }
                }
                if let (true, Some(due_at)) =
                    (deadline_due(times, now, &self.sla), times.reply_due_at)
                {
                    let notices = self.notices(Event::ReplyDeadline, facts, now, due_at);
                    if self
                        .store
                        .sla_deadline_warned(facts.id, due_at, now, &notices)
                        .await?
                    {
                        queued += notices.len() as u64;
                        log_notice(facts.id, Event::ReplyDeadline, notices.len());
                    }
                }
            }
            if (due.len() as i64) < BATCH {
                break;
            }
        }
        if queued > 0 {
            self.deliver.notify_one();
        }
        Ok(queued)
    }

    /// One notice per target that receives `event`. `anchor` (when the
    /// ticket opened, or its reply deadline) makes the idempotency key
    /// differ when a ticket reopens.
    fn notices(
        &self,
        event: Event,
        facts: &TicketFacts,
        now: i64,
        anchor: i64,
    ) -> Vec<NewNotification> {
        let link = self.notify.ticket_link(facts.id);
        let notice = Notice {
            event,
            ticket: facts,
            now,
            link: link.as_deref(),
        };
        self.notify
            .targets
            .iter()
            .filter(|(_, target)| target.events.contains(&event))
            .map(|(name, target)| NewNotification {
                target: name.clone(),
                event,
                body: format::body(target.kind, &notice, &target.mention),
                idempotency_key: format!(
                    "kefu-notify-{}-{anchor}-{}-{name}",
                    facts.id,
                    event.as_str()
                ),
            })
            .collect()
    }
}

fn log_notice(ticket: i64, event: Event, targets: usize) {
    if targets > 0 {
        tracing::info!(ticket, event = event.as_str(), targets, "ticket notice");
    } else {
        tracing::debug!(
            ticket,
            event = event.as_str(),
            "ticket notice: no target takes it"
        );
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
