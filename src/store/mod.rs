//! Durable state: conversations, transcripts, the outbox, escalations and
//! poller cursors, in SQLite (the default, one file) or PostgreSQL (for
//! several kefu replicas), through one set of portable SQL statements.
//!
//! Every write that must not be half-done is one transaction: an accepted
//! message with its conversation; a reply with its outbox row and the
//! buyer messages it answers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

mod agents;

pub use agents::AgentRow;

use crate::model::{
    Accepted, BotReply, Conversation, Delivery, InboundMessage, PendingMessage, now_ms,
};

mod tickets;
pub use tickets::{
    Claim, ConversationSummary, Escalation, ExportRow, Note, Refusal, Search, Ticket, TicketChange,
    TicketFilter, priority_label,
};
mod notify;
pub use notify::{NewNotification, NotificationRow, PendingNotification, SlaTicket};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database behind kefu; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating the SQLite file and its folder if needed) and migrates.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "database.url {url:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            )));
        };
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default();
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Config(format!(
                            "cannot create the data directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
            }
        }
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; NORMAL
                        // sync is durable across a process crash (the case
                        // kefu guards against) at a fraction of FULL's cost.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => {
                sqlx::migrate!("src/store/migrations/sqlite")
                    .run(&pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("src/store/migrations/postgres")
                    .run(&pool)
                    .await?
            }
        }
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a buyer's message with its conversation, once: a repeated
    /// channel message id changes nothing.
    pub async fn accept_inbound(&self, msg: &InboundMessage) -> Result<Accepted> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Write first: in SQLite a transaction that starts by reading and
        // then writes cannot wait for the write lock (it fails "database is
        // locked" at once), while one that starts by writing waits out
        // busy_timeout. A duplicate rolls the upsert back.
        let conversation_id: i64 = sqlx::query(
            "INSERT INTO conversations
                 (channel, external_id, buyer_id, buyer_name, buyer_locale, buyer_country, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (channel, external_id) DO UPDATE SET
                 buyer_id = COALESCE(excluded.buyer_id, conversations.buyer_id),
                 buyer_name = COALESCE(excluded.buyer_name, conversations.buyer_name),
                 buyer_locale = COALESCE(excluded.buyer_locale, conversations.buyer_locale),
                 buyer_country = COALESCE(excluded.buyer_country, conversations.buyer_country),
                 updated_at = excluded.updated_at
             RETURNING id",
        )
        .bind(&msg.channel)
        .bind(&msg.conversation_id)
        .bind(&msg.buyer.id)
        .bind(&msg.buyer.name)
        .bind(&msg.buyer.locale)
        .bind(&msg.buyer.country)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let attachments = (!msg.attachments.is_empty())
            .then(|| serde_json::Value::Array(msg.attachments.clone()).to_string());
        let inserted = sqlx::query(
            "INSERT INTO messages
                 (conversation_id, channel, external_id, author, text, attachments, sent_at, created_at)
             VALUES ($1, $2, $3, 'buyer', $4, $5, $6, $7)
             ON CONFLICT (channel, external_id) DO NOTHING
             RETURNING id",
        )
        .bind(conversation_id)
        .bind(&msg.channel)
        .bind(&msg.message_id)
        .bind(&msg.text)
        .bind(attachments)
        .bind(msg.sent_at)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            // Seen before: dropping `tx` rolls the conversation upsert back,
            // so a repeat changes nothing.
            return Ok(Accepted::Duplicate);
        };
        let message_id: i64 = row.try_get(0)?;
        tx.commit().await?;
        Ok(Accepted::New {
            conversation_id,
            message_id,
        })
    }

    /// Buyer messages accepted but not yet handled (after a restart), by
    /// conversation, oldest first.
    pub async fn unprocessed(&self) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT conversation_id, id FROM messages
             WHERE author = 'buyer' AND processed_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn conversation(&self, id: i64) -> Result<Option<Conversation>> {
        let row = sqlx::query(
            "SELECT id, channel, external_id, buyer_id, buyer_name, buyer_locale, lang, state
             FROM conversations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Conversation {
                id: r.try_get(0)?,
                channel: r.try_get(1)?,
                external_id: r.try_get(2)?,
                buyer_id: r.try_get(3)?,
                buyer_name: r.try_get(4)?,
                buyer_locale: r.try_get(5)?,
                lang: r.try_get(6)?,
                state: r.try_get(7)?,
            })
        })
        .transpose()
    }

    /// The conversation's buyer messages not yet handled, oldest first.
    pub async fn pending_messages(&self, conversation_id: i64) -> Result<Vec<PendingMessage>> {
        let rows = sqlx::query(
            "SELECT id, text, attachments FROM messages
             WHERE conversation_id = $1 AND author = 'buyer' AND processed_at IS NULL
             ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let attachments: Option<String> = r.try_get(2)?;
                let attachments = attachments
                    .and_then(|a| serde_json::from_str::<Vec<serde_json::Value>>(&a).ok())
                    .map_or(0, |a| a.len());
                Ok(PendingMessage {
                    id: r.try_get(0)?,
                    text: r.try_get(1)?,
                    attachments,
                })
            })
            .collect()
    }

    /// Bot replies in a conversation since `since_ms`.
    pub async fn bot_replies_since(&self, conversation_id: i64, since_ms: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND author = 'bot' AND created_at >= $2",
        )
        .bind(conversation_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Records what kefu did with `answered` buyer messages, in one
    /// transaction: the reply (if any) with its outbox row, the messages
    /// marked handled, the conversation's language, and what happens to its
    /// ticket (opened, reopened, told the buyer wrote).
    /// Returns the outbox id of the reply.
    pub async fn record_outcome(&self, outcome: Outcome<'_>) -> Result<Option<i64>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut outbox_id = None;
        if let Some(reply) = outcome.reply {
            let message_id: i64 = sqlx::query(
                "INSERT INTO messages (conversation_id, channel, author, text, lang, intents, decision, created_at)
                 VALUES ($1, $2, 'bot', $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(outcome.conversation_id)
            .bind(outcome.channel)
            .bind(&reply.text)
            .bind(&reply.lang)
            .bind(&reply.intents)
            .bind(&reply.decision)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let key = format!("kefu-{}-{message_id}", outcome.channel);
            let id: i64 = sqlx::query(
                "INSERT INTO outbox (conversation_id, message_id, channel, idempotency_key, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(outcome.conversation_id)
            .bind(message_id)
            .bind(outcome.channel)
            .bind(key)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            outbox_id = Some(id);
        }
        for id in outcome.answered {
            sqlx::query("UPDATE messages SET processed_at = $1, lang = COALESCE(lang, $2), intents = $3, decision = $4 WHERE id = $5")
                .bind(now)
                .bind(outcome.lang)
                .bind(outcome.reply.map(|r| r.intents.as_str()))
                .bind(outcome.reply.map(|r| r.decision.as_str()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE conversations SET lang = COALESCE($1, lang), updated_at = $2 WHERE id = $3",
        )
        .bind(outcome.lang)
        .bind(now)
        .bind(outcome.conversation_id)
        .execute(&mut *tx)
        .await?;
        tickets::apply(&mut tx, outcome.conversation_id, outcome.ticket, now).await?;
        tx.commit().await?;
        Ok(outbox_id)
    }

    /// Replies due now: for each conversation only its oldest pending one,
    /// so a conversation's replies arrive in order.
    pub async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT o.id, o.conversation_id, o.channel, c.external_id, c.buyer_id, m.text, o.idempotency_key, o.attempts
             FROM outbox o
             JOIN conversations c ON c.id = o.conversation_id
             JOIN messages m ON m.id = o.message_id
             WHERE o.state = 'pending' AND o.next_attempt_at <= $1
               AND o.id = (SELECT MIN(o2.id) FROM outbox o2
                           WHERE o2.conversation_id = o.conversation_id AND o2.state = 'pending')
             ORDER BY o.next_attempt_at, o.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let attempts: i64 = r.try_get(7)?;
                Ok(Delivery {
                    outbox_id: r.try_get(0)?,
                    conversation_id: r.try_get(1)?,
                    channel: r.try_get(2)?,
                    conversation_external_id: r.try_get(3)?,
                    buyer_id: r.try_get(4)?,
                    text: r.try_get(5)?,
                    idempotency_key: r.try_get(6)?,
                    attempts: attempts as u32,
                })
            })
            .collect()
    }

    /// Reserves a due delivery until `until`; false if another worker has it.
    pub async fn claim_delivery(&self, outbox_id: i64, now: i64, until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE id = $2 AND state = 'pending' AND next_attempt_at <= $3",
        )
        .bind(until)
        .bind(outbox_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delivered(&self, outbox_id: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'delivered', delivered_at = $1, last_error = NULL WHERE id = $2")
            .bind(now_ms())
            .bind(outbox_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A failed attempt, to be tried again at `retry_at`.
    pub async fn retry_later(
        &self,
        outbox_id: i64,
        attempts: u32,
        retry_at: i64,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
        )
        .bind(attempts as i64)
        .bind(retry_at)
        .bind(error)
        .bind(outbox_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a delivery and hands the conversation to a person, in
    /// one transaction: a reply is never silently dropped.
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        attempts: u32,
        error: &str,
        reply_deadline_ms: i64,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = $1, last_error = $2 WHERE id = $3",
        )
        .bind(attempts as i64)
        .bind(error)
        .bind(delivery.outbox_id)
        .execute(&mut *tx)
        .await?;
        let detail = format!("a reply could not be delivered: {error}");
        tickets::escalate(
            &mut tx,
            delivery.conversation_id,
            Escalation {
                kind: "delivery_failed",
                detail: Some(&detail),
                priority: 1,
                reply_deadline_ms,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// When the next pending delivery is due, if any.
    pub async fn next_due_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn cursor(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
    }

    pub async fn set_cursor(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The transcript of a conversation: (author, text, lang, decision), oldest first.
    pub async fn transcript(&self, conversation_id: i64) -> Result<Vec<TranscriptLine>> {
        let rows = sqlx::query(
            "SELECT id, author, agent_id, text, attachments, lang, intents, decision, created_at FROM messages
             WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TranscriptLine {
                    id: r.try_get(0)?,
                    author: r.try_get(1)?,
                    agent_id: r.try_get(2)?,
                    text: r.try_get(3)?,
                    attachments: r.try_get(4)?,
                    lang: r.try_get(5)?,
                    intents: r.try_get(6)?,
                    decision: r.try_get(7)?,
                    created_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Every escalation of a conversation, oldest first: (reason, detail).
    pub async fn escalations(&self, conversation_id: i64) -> Result<Vec<(String, Option<String>)>> {
        Ok(self
            .escalation_log(conversation_id)
            .await?
            .into_iter()
            .map(|(reason, detail, _)| (reason, detail))
            .collect())
    }

    /// The conversation id for a channel's conversation.
    pub async fn find_conversation(&self, channel: &str, external_id: &str) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT id FROM conversations WHERE channel = $1 AND external_id = $2")
                .bind(channel)
                .bind(external_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
    }

    /// Outbox rows by state, for tests and operations: (state, count).
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// What the pipeline did with a batch of buyer messages.
pub struct Outcome<'a> {
    pub conversation_id: i64,
    pub channel: &'a str,
    /// The buyer messages this outcome handles.
    pub answered: &'a [i64],
    pub reply: Option<&'a BotReply>,
    pub lang: Option<&'a str>,
    /// What happens to the conversation's ticket.
    pub ticket: TicketChange<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub id: i64,
    /// buyer, bot or agent
    pub author: String,
    /// The agent who wrote it (author = agent).
    pub agent_id: Option<String>,
    pub text: String,
    /// JSON array as the channel described them, if any.
    pub attachments: Option<String>,
    pub lang: Option<String>,
    pub intents: Option<String>,
    pub decision: Option<String>,
    pub created_at: i64,
}
