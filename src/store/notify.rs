//! Notices and SLA timers in the store: the tickets whose timers are due,
//! the compare-and-set that moves a ticket's timer on together with the
//! notification rows it causes (one transaction, so two kefu replicas never
//! both notify), and the notification outbox the notifier delivers from.

use sqlx::Row;

use super::{Result, Store};
use crate::notify::format::{Event, TicketFacts};
use crate::notify::sla::{LAST_LEVEL, TicketState, TicketTimes};

/// A ticket with a timer due: what a notice may say and the timer columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaTicket {
    pub facts: TicketFacts,
    pub times: TicketTimes,
}

/// A notification row to insert with a timer change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub target: String,
    pub event: Event,
    /// Exactly what is POSTed (Feishu's signature fields are added per attempt).
    pub body: String,
    /// Unique: a second insert with the same key is dropped.
    pub idempotency_key: String,
}

/// A notification due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    pub id: i64,
    pub target: String,
    pub event: String,
    pub ticket_id: Option<i64>,
    pub body: String,
    pub idempotency_key: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// A notification row as stored, for tests and operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    pub id: i64,
    pub target: String,
    pub event: String,
    pub ticket_id: Option<i64>,
    pub body: String,
    pub idempotency_key: String,
    pub attempts: i64,
    pub state: String,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// Open tickets below the last level with a next time: the unclaimed track.
fn sla_pending(t: &str) -> String {
    format!("{t}state = 'open' AND {t}sla_level < {LAST_LEVEL} AND {t}sla_next_at IS NOT NULL")
}

/// Open or claimed tickets nobody has answered and not yet warned about.
fn deadline_pending(t: &str) -> String {
    format!(
        "{t}state IN ('open', 'claimed') AND {t}deadline_notified = 0 AND {t}reply_due_at IS NOT NULL"
    )
}

impl Store {
    /// Tickets with a notice due: unclaimed-track timers at `now`, reply
    /// deadlines up to `deadline_horizon`; oldest ticket first.
    pub async fn sla_due(
        &self,
        now: i64,
        deadline_horizon: i64,
        limit: i64,
    ) -> Result<Vec<SlaTicket>> {
        let sql = format!(
            "SELECT t.id, t.state, t.priority, t.reason, t.detail, t.agent_id, t.opened_at,
                    t.reply_due_at, t.deadline_notified, t.sla_level, t.sla_next_at, c.channel, c.lang
             FROM tickets t JOIN conversations c ON c.id = t.conversation_id
             WHERE ({} AND t.sla_next_at <= $1) OR ({} AND t.reply_due_at <= $2)
             ORDER BY t.id LIMIT $3",
            sla_pending("t."),
            deadline_pending("t.")
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(deadline_horizon)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get(1)?;
                let deadline_notified: i64 = r.try_get(8)?;
                let opened_at: i64 = r.try_get(6)?;
                let reply_due_at: Option<i64> = r.try_get(7)?;
                Ok(SlaTicket {
                    facts: TicketFacts {
                        id: r.try_get(0)?,
                        priority: r.try_get(2)?,
                        reason: r.try_get(3)?,
                        detail: r.try_get(4)?,
                        agent_id: r.try_get(5)?,
                        channel: r.try_get(11)?,
                        lang: r.try_get(12)?,
                        opened_at,
                        reply_due_at,
                    },
                    times: TicketTimes {
                        state: TicketState::from_db(&state),
                        opened_at,
                        sla_level: r.try_get(9)?,
                        sla_next_at: r.try_get(10)?,
                        reply_due_at,
                        deadline_notified: deadline_notified != 0,
                    },
                })
            })
            .collect()
    }

    /// Moves an unclaimed ticket from `from_level` to `to_level` (next due
    /// at `next_at`) and queues its notices, in one transaction. False, and
    /// nothing written, when the ticket changed meanwhile (claimed,
    /// reopened, or another replica got there first).
    #[allow(clippy::too_many_arguments)]
    pub async fn sla_advance(
        &self,
        ticket_id: i64,
        opened_at: i64,
        from_level: i64,
        to_level: i64,
        next_at: Option<i64>,
        now: i64,
        notices: &[NewNotification],
    ) -> Result<bool> {
        // The UPDATE comes first: in SQLite a transaction that writes first
        // waits for the write lock instead of failing.
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tickets SET sla_level = $1, sla_next_at = $2, updated_at = $3
             WHERE id = $4 AND state = 'open' AND sla_level = $5 AND opened_at = $6",
        )
        .bind(to_level)
        .bind(next_at)
        .bind(now)
        .bind(ticket_id)
        .bind(from_level)
        .bind(opened_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_notifications(&mut tx, ticket_id, notices, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the reply-deadline warning for `reply_due_at` sent and queues
    /// its notices, in one transaction; false when it was already sent, an
    /// agent replied, or the ticket was resolved meanwhile.
    pub async fn sla_deadline_warned(
        &self,
        ticket_id: i64,
        reply_due_at: i64,
        now: i64,
        notices: &[NewNotification],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tickets SET deadline_notified = 1, updated_at = $1
             WHERE id = $2 AND deadline_notified = 0 AND reply_due_at = $3
               AND state IN ('open', 'claimed')",
        )
        .bind(now)
        .bind(ticket_id)
        .bind(reply_due_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_notifications(&mut tx, ticket_id, notices, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// When the next timer comes due: the earliest unclaimed-track time or
    /// reply deadline minus `deadline_warning_ms`.
    pub async fn sla_next_due(&self, deadline_warning_ms: i64) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT (SELECT MIN(sla_next_at) FROM tickets WHERE {}),
                    (SELECT MIN(reply_due_at) FROM tickets WHERE {})",
            sla_pending(""),
            deadline_pending("")
        );
        let row = sqlx::query(&sql).fetch_one(&self.pool).await?;
        let sla: Option<i64> = row.try_get(0)?;
        let deadline: Option<i64> = row.try_get(1)?;
        let deadline = deadline.map(|d| d.saturating_sub(deadline_warning_ms));
        Ok(match (sla, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Notifications due for delivery at `now`, oldest first.
    pub async fn due_notifications(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<PendingNotification>> {
        let rows = sqlx::query(
            "SELECT id, target, event, ticket_id, body, idempotency_key, attempts
             FROM notifications
             WHERE state = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let attempts: i64 = r.try_get(6)?;
                Ok(PendingNotification {
                    id: r.try_get(0)?,
                    target: r.try_get(1)?,
                    event: r.try_get(2)?,
                    ticket_id: r.try_get(3)?,
                    body: r.try_get(4)?,
                    idempotency_key: r.try_get(5)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// Reserves a due notification until `until`; false if another worker
    /// (or replica) has it.
    pub async fn claim_notification(&self, id: i64, now: i64, until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE notifications SET next_attempt_at = $1
             WHERE id = $2 AND state = 'pending' AND next_attempt_at <= $3",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn notification_delivered(&self, id: i64, attempts: u32, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET state = 'delivered', attempts = $1, delivered_at = $2, last_error = NULL
             WHERE id = $3",
        )
        .bind(i64::from(attempts))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A failed attempt, to be tried again at `retry_at`.
    pub async fn notification_retry(
        &self,
        id: i64,
        attempts: u32,
        retry_at: i64,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
        )
        .bind(i64::from(attempts))
        .bind(retry_at)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a notification.
    pub async fn notification_dead(&self, id: i64, attempts: u32, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET state = 'dead', attempts = $1, last_error = $2 WHERE id = $3",
        )
        .bind(i64::from(attempts))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the next pending notification is due, if any.
    pub async fn next_notification_due(&self) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT MIN(next_attempt_at) FROM notifications WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get(0)?)
    }

    /// Every notification, oldest first (for tests and operations).
    pub async fn notifications(&self) -> Result<Vec<NotificationRow>> {
        let rows = sqlx::query(
            "SELECT id, target, event, ticket_id, body, idempotency_key, attempts, state,
                    last_error, created_at, delivered_at
             FROM notifications ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRow {
                    id: r.try_get(0)?,
                    target: r.try_get(1)?,
                    event: r.try_get(2)?,
                    ticket_id: r.try_get(3)?,
                    body: r.try_get(4)?,
                    idempotency_key: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                    state: r.try_get(7)?,
                    last_error: r.try_get(8)?,
                    created_at: r.try_get(9)?,
                    delivered_at: r.try_get(10)?,
                })
            })
            .collect()
    }
}

async fn insert_notifications(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ticket_id: i64,
    notices: &[NewNotification],
    now: i64,
) -> Result<()> {
    for n in notices {
        sqlx::query(
            "INSERT INTO notifications (target, event, ticket_id, body, idempotency_key, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&n.target)
        .bind(n.event.as_str())
        .bind(ticket_id)
        .bind(&n.body)
        .bind(&n.idempotency_key)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
