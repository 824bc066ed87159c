//! From an accepted message to a stored reply: one conversation strictly in
//! order, different conversations in parallel.
//!
//! [`Intake`] stores a buyer message durably and queues it; webhooks get a
//! "busy" answer (503) when the queue is full instead of waiting, pollers
//! wait. The dispatcher routes each queued message to its conversation's
//! worker (spawned on demand, bounded queue, retired when idle). A worker
//! waits out the coalescing window so a buyer who types three lines gets one
//! answer, reads all of the conversation's unhandled messages from the
//! store, asks the [`Engine`], and records the reply and its outbox row in
//! one transaction. Because the store, not the queue, says what is
//! unhandled, a restart simply re-queues what was accepted and not answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::channel::Channels;
use crate::config::{HandoverConfig, PipelineConfig};
use crate::engine::{Engine, Inbound};
use crate::lang::Lang;
use crate::metrics::{IntentLabel, Metrics};
use crate::model::{Accepted, BotReply, InboundMessage, now_ms};
use crate::policy::Decision;
use crate::store::{Escalation, Outcome, Store, StoreError, TicketChange};

/// A stored buyer message to handle.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub conversation_id: i64,
    pub message_id: i64,
    /// When it was accepted, for the reply-latency histogram.
    pub accepted_at: Instant,
}

/// What [`Intake::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intook {
    Accepted,
    Duplicate,
    /// kefu's own message echoed back by the channel: never answered.
    OwnEcho,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The queue is full; the sender should retry shortly.
    #[error("kefu is busy; retry shortly")]
    Busy,
    /// kefu is shutting down.
    #[error("kefu is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether to wait for room in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    Refuse,
    Wait,
}

/// The front door for buyer messages from every channel. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
    store: Store,
    channels: Arc<Channels>,
    metrics: Arc<Metrics>,
}

impl Intake {
    /// Stores the message (once) and queues it for an answer. Room in the
    /// queue is reserved first, so a message is never stored and then left
    /// unqueued.
    pub async fn accept(
        &self,
        msg: InboundMessage,
        when_full: WhenFull,
    ) -> Result<Intook, IntakeError> {
        let own = self.channels.get(&msg.channel).is_some_and(|c| {
            !c.self_id.is_empty() && msg.buyer.id.as_deref() == Some(c.self_id.as_str())
        });
        if own {
            self.metrics.inbound(&msg.channel, "own_echo");
            return Ok(Intook::OwnEcho);
        }
        let permit = match when_full {
            WhenFull::Refuse => self.jobs.clone().try_reserve_owned().map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => IntakeError::Busy,
                mpsc::error::TrySendError::Closed(_) => IntakeError::Closed,
            }),
            WhenFull::Wait => self
                .jobs
                .clone()
                .reserve_owned()
                .await
                .map_err(|_| IntakeError::Closed),
        };
        let permit = match permit {
            Ok(p) => p,
            Err(e) => {
                self.metrics.inbound(&msg.channel, "busy");
                return Err(e);
            }
        };
        // Store and queue in a task of its own: if the caller goes away
        // (a webhook client disconnects), a stored message is still queued.
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let task = tokio::spawn(async move {
            match store.accept_inbound(&msg).await? {
                Accepted::New {
                    conversation_id,
                    message_id,
                } => {
                    permit.send(Job {
                        conversation_id,
                        message_id,
                        accepted_at: Instant::now(),
                    });
                    metrics.inbound(&msg.channel, "accepted");
                    Ok(Intook::Accepted)
                }
                Accepted::Duplicate => {
                    metrics.inbound(&msg.channel, "duplicate");
                    Ok(Intook::Duplicate)
                }
            }
        });
        task.await.map_err(|_| IntakeError::Closed)?
    }
}

/// The platform's reply deadline of a channel, in ms (24 h for a channel
/// no longer configured).
pub fn reply_deadline_ms(channels: &Channels, channel: &str) -> i64 {
    channels
        .get(channel)
        .map_or(Duration::from_secs(24 * 3600), |c| c.reply_deadline())
        .as_millis() as i64
}

/// Shared by the dispatcher and all workers.
pub struct Context {
    pub engine: Arc<Engine>,
    pub store: Store,
    pub channels: Arc<Channels>,
    pub metrics: Arc<Metrics>,
    pub config: PipelineConfig,
    pub handover: HandoverConfig,
    /// Wakes the outbox when a reply is stored.
    pub outbox_wake: Arc<Notify>,
    /// Wakes whoever watches the queue (SLA notices) when a ticket opens.
    pub tickets_wake: Arc<Notify>,
}

/// Starts the dispatcher. Returns the intake and the dispatcher's task; the
/// task ends once every `Intake` clone is dropped and all queued work is done.
pub fn start(
    ctx: Arc<Context>,
    shutdown: watch::Receiver<bool>,
) -> (Intake, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(ctx.config.queue_capacity);
    let intake = Intake {
        jobs: tx,
        store: ctx.store.clone(),
        channels: ctx.channels.clone(),
        metrics: ctx.metrics.clone(),
    };
    let task = tokio::spawn(dispatch(ctx, rx, shutdown));
    (intake, task)
}

/// Queues messages that were accepted but not answered before a restart.
pub async fn requeue_unprocessed(intake: &Intake, store: &Store) -> Result<usize, IntakeError> {
    let pending = store.unprocessed().await?;
    for &(conversation_id, message_id) in &pending {
        intake
            .jobs
            .send(Job {
                conversation_id,
                message_id,
                accepted_at: Instant::now(),
            })
            .await
            .map_err(|_| IntakeError::Closed)?;
    }
    Ok(pending.len())
}

async fn dispatch(
    ctx: Arc<Context>,
    mut jobs: mpsc::Receiver<Job>,
    shutdown: watch::Receiver<bool>,
) {
    let mut workers: HashMap<i64, mpsc::Sender<Job>> = HashMap::new();
    let mut tasks = JoinSet::new();
    // Idle workers ask to retire here; only the dispatcher may drop their
    // sender, so no job is ever sent to a worker that has stopped.
    let (retire_tx, mut retire_rx) = mpsc::channel::<i64>(64);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let mut job = job;
                loop {
                    let sender = workers.entry(job.conversation_id).or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(ctx.config.conversation_queue);
                        tasks.spawn(worker(ctx.clone(), job.conversation_id, rx, retire_tx.clone(), shutdown.clone()));
                        tx
                    });
                    match sender.send(job).await {
                        Ok(()) => break,
                        // The worker ended (it only does so on a panic):
                        // start a new one and hand it the job.
                        Err(mpsc::error::SendError(back)) => {
                            workers.remove(&back.conversation_id);
                            job = back;
                        }
                    }
                }
            }
            Some(conversation) = retire_rx.recv() => {
                if let Some(sender) = workers.get(&conversation) {
                    if sender.capacity() == sender.max_capacity() {
                        workers.remove(&conversation);
                    }
                }
            }
            Some(result) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "conversation worker failed");
                }
            }
        }
    }
    // Intake closed: let every worker finish what it has.
    drop(workers);
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            tracing::error!(error = %e, "conversation worker failed");
        }
    }
}

async fn worker(
    ctx: Arc<Context>,
    conversation_id: i64,
    mut jobs: mpsc::Receiver<Job>,
    retire: mpsc::Sender<i64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let idle = Duration::from_secs(ctx.config.idle_worker_secs.max(1));
    let window = Duration::from_millis(ctx.config.coalesce_ms);
    loop {
        let first = match tokio::time::timeout(idle, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                let _ = retire.try_send(conversation_id);
                continue;
            }
        };
        // Coalesce: more lines within the window join this answer. On
        // shutdown, answer at once.
        let deadline = tokio::time::Instant::now() + window;
        let mut oldest = first.accepted_at;
        while !*shutdown.borrow() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                more = jobs.recv() => match more {
                    Some(job) => oldest = oldest.min(job.accepted_at),
                    None => break,
                },
                _ = shutdown.changed() => break,
            }
        }
        let span = tracing::info_span!("conversation", id = conversation_id);
        if let Err(e) = handle(&ctx, conversation_id).instrument(span).await {
            // The messages stay unhandled in the store and are picked up
            // again on the next message or restart.
            tracing::error!(conversation = conversation_id, error = %e, "could not handle messages");
        } else {
            ctx.metrics
                .reply_seconds
                .observe(oldest.elapsed().as_secs_f64());
        }
    }
}

/// Answers every unhandled buyer message of a conversation at once.
async fn handle(ctx: &Context, conversation_id: i64) -> Result<(), StoreError> {
    let Some(conversation) = ctx.store.conversation(conversation_id).await? else {
        return Ok(());
    };
    let pending = ctx.store.pending_messages(conversation_id).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = pending.iter().map(|m| m.id).collect();
    let channel = conversation.channel.as_str();
    let reply_deadline_ms = reply_deadline_ms(&ctx.channels, channel);
    let outcome = |reply, lang, ticket| Outcome {
        conversation_id,
        channel,
        answered: &ids,
        reply,
        lang,
        ticket,
    };

    if conversation.state == "human" {
        // People hold the conversation: record, stay silent; the ticket
        // notes that the buyer is waiting for a person's answer.
        ctx.store
            .record_outcome(outcome(
                None,
                None,
                TicketChange::BuyerWrote { reply_deadline_ms },
            ))
            .await?;
        tracing::info!(
            messages = ids.len(),
            "recorded for the people holding this conversation"
        );
        return Ok(());
    }
    let reopen_since = now_ms() - ctx.handover.reopen_within.as_millis() as i64;
    if let Some(ticket_id) = ctx
        .store
        .reopenable_ticket(conversation_id, reopen_since)
        .await?
    {
        // Written soon after an agent settled it: the same people carry on.
        ctx.store
            .record_outcome(outcome(
                None,
                None,
                TicketChange::Reopen {
                    ticket_id,
                    reply_deadline_ms,
                },
            ))
            .await?;
        ctx.metrics.escalation("reopened");
        ctx.tickets_wake.notify_one();
        tracing::info!(ticket = ticket_id, "the buyer wrote again: ticket reopened");
        return Ok(());
    }
    let since = now_ms() - 60_000;
    let recent = ctx.store.bot_replies_since(conversation_id, since).await?;
    if recent >= i64::from(ctx.config.max_bot_replies_per_minute) {
        let detail = format!("{recent} bot replies in the last minute: a loop with another bot?");
        ctx.store
            .record_outcome(outcome(
                None,
                None,
                TicketChange::Escalate(Escalation {
                    kind: "bot_reply_cap",
                    detail: Some(&detail),
                    priority: 2,
                    reply_deadline_ms,
                }),
            ))
            .await?;
        ctx.metrics.escalation("bot_reply_cap");
        ctx.tickets_wake.notify_one();
        tracing::warn!(%detail, "bot stays silent and hands over");
        return Ok(());
    }

    let text = pending
        .iter()
        .map(|m| m.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let style = ctx
        .channels
        .get(channel)
        .map(|c| c.style)
        .unwrap_or_default();
    let result = ctx.engine.respond(&Inbound {
        text: &text,
        locale: conversation.buyer_locale.as_deref(),
        last_lang: conversation.lang.as_deref().and_then(Lang::from_locale),
        buyer_name: conversation.buyer_name.as_deref(),
        style,
    });
    let report = result.report();
    let reply = BotReply {
        text: result.reply.clone(),
        lang: result.lang.code().to_string(),
        intents: serde_json::to_string(&report.intents).unwrap_or_default(),
        decision: serde_json::to_string(&serde_json::json!({
            "action": report.action,
            "reason": report.reason,
            "confidence": report.confidence,
            "matched": report.matched,
        }))
        .unwrap_or_default(),
    };
    // Attachments without words (a photo of a broken item) are something
    // only a person can look at; say so in the agent's reason.
    let attachments: usize = pending.iter().map(|m| m.attachments).sum();
    let reason = result.decision.reason().map(|r| {
        if text.is_empty() && attachments > 0 {
            format!("the buyer sent {attachments} attachment(s) and no text")
        } else {
            r.to_string()
        }
    });
    let escalation = match &result.decision {
        Decision::Escalate { reason: why, .. } => Some(Escalation {
            kind: why.kind(),
            detail: reason.as_deref(),
            priority: why.priority(),
            reply_deadline_ms,
        }),
        Decision::Answer { .. } => None,
    };
    let outbox = ctx
        .store
        .record_outcome(outcome(
            (!reply.text.trim().is_empty()).then_some(&reply),
            Some(result.lang.code()),
            escalation.map_or(TicketChange::None, TicketChange::Escalate),
        ))
        .await?;
    if let Some(best) = result.classification.best() {
        ctx.metrics
            .intents
            .get_or_create(&IntentLabel {
                intent: best.intent.to_string(),
            })
            .inc();
    }
    if let Some(escalation) = &escalation {
        ctx.metrics.escalation(escalation.kind);
        ctx.tickets_wake.notify_one();
    }
    tracing::info!(
        messages = ids.len(),
        lang = result.lang.code(),
        intents = ?report.intents,
        action = report.action,
        reason = reason.as_deref().unwrap_or(""),
        "handled"
    );
    if outbox.is_some() {
        ctx.outbox_wake.notify_one();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::Buyer;

    fn message(id: &str) -> InboundMessage {
        InboundMessage {
            channel: "demo".into(),
            message_id: id.into(),
            conversation_id: "c".into(),
            text: "hi".into(),
            buyer: Buyer::default(),
            sent_at: None,
            attachments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_without_storing_and_pollers_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/k.db?mode=rwc", dir.path().display()))
            .await
            .unwrap();
        let config = Config::load(None).unwrap();
        // A queue of one that nobody reads.
        let (tx, mut rx) = mpsc::channel(1);
        let intake = Intake {
            jobs: tx,
            store: store.clone(),
            channels: Arc::new(Channels::new(&config)),
            metrics: Arc::new(Metrics::new()),
        };
        assert_eq!(
            intake.accept(message("a"), WhenFull::Refuse).await.unwrap(),
            Intook::Accepted
        );
        let refused = intake.accept(message("b"), WhenFull::Refuse).await;
        assert!(matches!(refused, Err(IntakeError::Busy)));
        assert_eq!(
            store.unprocessed().await.unwrap().len(),
            1,
            "the refused message was not stored"
        );

        // A poller waits for room instead.
        let waiting = tokio::spawn({
            let intake = intake.clone();
            async move { intake.accept(message("b"), WhenFull::Wait).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        rx.recv().await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), Intook::Accepted);
        assert_eq!(
            intake.accept(message("b"), WhenFull::Refuse).await.ok(),
            None,
            "still full"
        );
        rx.recv().await.unwrap();
        assert_eq!(
            intake.accept(message("b"), WhenFull::Refuse).await.unwrap(),
            Intook::Duplicate
        );
    }
}
