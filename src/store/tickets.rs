//! Tickets: conversations handed to people, the queue agents work from,
//! and what agents do with them (claim, assign, reply, note, resolve, hand
//! back), plus transcript search and export.
//!
//! A ticket is `open` (waiting), `claimed` (one agent holds it) or
//! `resolved`. At most one ticket per conversation is unresolved (a unique
//! index says so). Every change is one conditional UPDATE, so two agents
//! (or two kefu replicas) racing for the same ticket cannot both win, and
//! the transaction starts with that write (SQLite lets a transaction that
//! starts by writing wait for the lock; one that reads first fails).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};
use crate::model::now_ms;

/// A ticket as agents see it in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub id: i64,
    pub conversation_id: i64,
    /// open, claimed or resolved
    pub state: String,
    /// 0 urgent (dispute risk), 1 high, 2 normal
    pub priority: i64,
    /// urgent, high or normal
    pub priority_label: String,
    /// Why the conversation came to a person: needs_person, dispute, no_match …
    pub reason: String,
    /// The same, as a sentence for the agent.
    pub detail: Option<String>,
    /// Who holds it (claimed) or settled it (resolved).
    pub agent_id: Option<String>,
    /// resolved or handed_back, once settled.
    pub resolution: Option<String>,
    pub channel: String,
    pub buyer_name: Option<String>,
    /// The buyer's language as kefu detected it.
    pub lang: Option<String>,
    /// The buyer's newest message.
    pub last_text: Option<String>,
    /// When it was (re)opened: waiting time counts from here (Unix ms).
    pub opened_at: i64,
    pub claimed_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_buyer_at: i64,
    /// The platform's deadline for a person's reply, if one is owed.
    pub reply_due_at: Option<i64>,
    /// How many times the buyer wrote again after it was resolved.
    pub reopened: i64,
}

pub fn priority_label(priority: i64) -> &'static str {
    match priority {
        i64::MIN..=0 => "urgent",
        1 => "high",
        _ => "normal",
    }
}

const TICKET_COLUMNS: &str = "t.id, t.conversation_id, t.state, t.priority, t.reason, t.detail, t.agent_id, t.resolution,
    c.channel, c.buyer_name, c.lang,
    (SELECT m.text FROM messages m WHERE m.conversation_id = t.conversation_id AND m.author = 'buyer' ORDER BY m.id DESC LIMIT 1),
    t.opened_at, t.claimed_at, t.resolved_at, t.last_buyer_at, t.reply_due_at, t.reopened";

fn ticket_from(r: &AnyRow) -> Result<Ticket> {
    let priority: i64 = r.try_get(3)?;
    Ok(Ticket {
        id: r.try_get(0)?,
        conversation_id: r.try_get(1)?,
        state: r.try_get(2)?,
        priority,
        priority_label: priority_label(priority).to_string(),
        reason: r.try_get(4)?,
        detail: r.try_get(5)?,
        agent_id: r.try_get(6)?,
        resolution: r.try_get(7)?,
        channel: r.try_get(8)?,
        buyer_name: r.try_get(9)?,
        lang: r.try_get(10)?,
        last_text: r.try_get(11)?,
        opened_at: r.try_get(12)?,
        claimed_at: r.try_get(13)?,
        resolved_at: r.try_get(14)?,
        last_buyer_at: r.try_get(15)?,
        reply_due_at: r.try_get(16)?,
        reopened: r.try_get(17)?,
    })
}

/// Why a conversation goes to a person.
#[derive(Debug, Clone, Copy)]
pub struct Escalation<'a> {
    /// Stable kind: needs_person, dispute, delivery_failed …
    pub kind: &'a str,
    /// The sentence the agent reads.
    pub detail: Option<&'a str>,
    /// 0 urgent, 1 high, 2 normal.
    pub priority: i64,
    /// How long the platform gives a person to answer (ms).
    pub reply_deadline_ms: i64,
}

/// What a buyer's new messages do to the conversation's ticket.
#[derive(Debug, Clone, Copy)]
pub enum TicketChange<'a> {
    None,
    /// Open a ticket (or raise the open one's priority) and give the
    /// conversation to people.
    Escalate(Escalation<'a>),
    /// A person holds the conversation: the ticket notes the buyer wrote
    /// (and owes a reply by the deadline).
    BuyerWrote {
        reply_deadline_ms: i64,
    },
    /// The buyer wrote again soon after the ticket was resolved.
    Reopen {
        ticket_id: i64,
        reply_deadline_ms: i64,
    },
}

/// Which tickets to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TicketFilter {
    /// open and claimed
    #[default]
    Active,
    Open,
    Claimed,
    Resolved,
    All,
}

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Now yours (or already was).
    Claimed(Box<Ticket>),
    /// Another agent holds it.
    HeldBy(String),
    Resolved,
    NotFound,
}

/// Why an agent's action on a ticket did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    Resolved,
    /// Claimed by someone else, or not claimed at all (`None`).
    NotYours(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Note {
    pub id: i64,
    pub ticket_id: i64,
    pub agent_id: String,
    pub text: String,
    pub created_at: i64,
}

/// Search criteria for transcripts; every given criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Text some message contains (case-insensitive).
    pub text: Option<String>,
    /// The buyer's id or name (name: contains), or the channel's
    /// conversation id.
    pub buyer: Option<String>,
    /// An order number some message mentions.
    pub order: Option<String>,
    /// Messages at or after (Unix ms).
    pub from: Option<i64>,
    /// Messages before (Unix ms).
    pub to: Option<i64>,
    /// Only this conversation.
    pub conversation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub id: i64,
    pub channel: String,
    pub external_id: String,
    pub buyer_id: Option<String>,
    pub buyer_name: Option<String>,
    pub buyer_locale: Option<String>,
    pub buyer_country: Option<String>,
    pub lang: Option<String>,
    /// bot or human
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One message with its conversation, for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub conversation: ConversationSummary,
    pub line: super::TranscriptLine,
}

/// `LIKE` pattern for "contains", with the wildcards in `needle` escaped.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::from("%");
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A bind value for dynamically built queries.
enum Bind {
    Int(i64),
    Text(String),
}

/// WHERE clauses over `messages m JOIN conversations c` for a search, with
/// their values; placeholders numbered from `$1`.
fn search_clauses(search: &Search) -> (String, Vec<Bind>) {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    let next = |bind: Bind, binds: &mut Vec<Bind>| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    for needle in [&search.text, &search.order].into_iter().flatten() {
        let p = next(Bind::Text(contains_pattern(needle.trim())), &mut binds);
        clauses.push(format!("LOWER(m.text) LIKE {p} ESCAPE '\\'"));
    }
    if let Some(buyer) = &search.buyer {
        let exact = next(Bind::Text(buyer.trim().to_string()), &mut binds);
        let name = next(Bind::Text(contains_pattern(buyer.trim())), &mut binds);
        clauses.push(format!(
            "(c.buyer_id = {exact} OR c.external_id = {exact} OR LOWER(c.buyer_name) LIKE {name} ESCAPE '\\')"
        ));
    }
    if let Some(from) = search.from {
        let p = next(Bind::Int(from), &mut binds);
        clauses.push(format!("m.created_at >= {p}"));
    }
    if let Some(to) = search.to {
        let p = next(Bind::Int(to), &mut binds);
        clauses.push(format!("m.created_at < {p}"));
    }
    if let Some(id) = search.conversation {
        let p = next(Bind::Int(id), &mut binds);
        clauses.push(format!("c.id = {p}"));
    }
    let clause = if clauses.is_empty() {
        "1 = 1".to_string()
    } else {
        clauses.join(" AND ")
    };
    (clause, binds)
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Int(v) => query.bind(v),
            Bind::Text(v) => query.bind(v),
        };
    }
    query
}

const CONVERSATION_COLUMNS: &str = "c.id, c.channel, c.external_id, c.buyer_id, c.buyer_name, c.buyer_locale, c.buyer_country, c.lang, c.state, c.created_at, c.updated_at";

fn conversation_from(r: &AnyRow, at: usize) -> Result<ConversationSummary> {
    Ok(ConversationSummary {
        id: r.try_get(at)?,
        channel: r.try_get(at + 1)?,
        external_id: r.try_get(at + 2)?,
        buyer_id: r.try_get(at + 3)?,
        buyer_name: r.try_get(at + 4)?,
        buyer_locale: r.try_get(at + 5)?,
        buyer_country: r.try_get(at + 6)?,
        lang: r.try_get(at + 7)?,
        state: r.try_get(at + 8)?,
        created_at: r.try_get(at + 9)?,
        updated_at: r.try_get(at + 10)?,
    })
}

/// Opens a ticket for the conversation, or raises the priority of its
/// unresolved one, records why, and gives the conversation to people.
pub(super) async fn escalate(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    conversation_id: i64,
    escalation: Escalation<'_>,
    now: i64,
) -> Result<i64> {
    sqlx::query(
        "INSERT INTO escalations (conversation_id, reason, detail, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(conversation_id)
    .bind(escalation.kind)
    .bind(escalation.detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    // A more urgent reason takes over the ticket's priority and headline.
    let existing = sqlx::query(
        "UPDATE tickets SET
             reason = CASE WHEN $1 < priority THEN $2 ELSE reason END,
             detail = CASE WHEN $1 < priority THEN $3 ELSE detail END,
             priority = CASE WHEN $1 < priority THEN $1 ELSE priority END,
             last_buyer_at = $4,
             reply_due_at = COALESCE(reply_due_at, $5),
             updated_at = $4
         WHERE conversation_id = $6 AND state <> 'resolved'
         RETURNING id",
    )
    .bind(escalation.priority)
    .bind(escalation.kind)
    .bind(escalation.detail)
    .bind(now)
    .bind(now + escalation.reply_deadline_ms)
    .bind(conversation_id)
    .fetch_optional(&mut **tx)
    .await?;
    let ticket_id: i64 = match existing {
        Some(row) => row.try_get(0)?,
        None => sqlx::query(
            "INSERT INTO tickets
                 (conversation_id, state, priority, reason, detail, opened_at, last_buyer_at,
                  reply_due_at, sla_level, sla_next_at, created_at, updated_at)
             VALUES ($1, 'open', $2, $3, $4, $5, $5, $6, 0, $5, $5, $5)
             RETURNING id",
        )
        .bind(conversation_id)
        .bind(escalation.priority)
        .bind(escalation.kind)
        .bind(escalation.detail)
        .bind(now)
        .bind(now + escalation.reply_deadline_ms)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?,
    };
    sqlx::query("UPDATE conversations SET state = 'human', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?;
    Ok(ticket_id)
}

/// Applies a [`TicketChange`] inside the pipeline's transaction.
pub(super) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    conversation_id: i64,
    change: TicketChange<'_>,
    now: i64,
) -> Result<()> {
    match change {
        TicketChange::None => {}
        TicketChange::Escalate(escalation) => {
            escalate(tx, conversation_id, escalation, now).await?;
        }
        TicketChange::BuyerWrote { reply_deadline_ms } => {
            let done = sqlx::query(
                "UPDATE tickets SET last_buyer_at = $1, reply_due_at = COALESCE(reply_due_at, $2),
                     deadline_notified = CASE WHEN reply_due_at IS NULL THEN 0 ELSE deadline_notified END,
                     updated_at = $1
                 WHERE conversation_id = $3 AND state <> 'resolved'",
            )
            .bind(now)
            .bind(now + reply_deadline_ms)
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                // Held by people without a ticket (set by hand in the
                // database?): give it one so nobody misses the message.
                let detail = "the buyer wrote in a conversation held by people that had no ticket";
                escalate(
                    tx,
                    conversation_id,
                    Escalation {
                        kind: "held_by_people",
                        detail: Some(detail),
                        priority: 2,
                        reply_deadline_ms,
                    },
                    now,
                )
                .await?;
            }
        }
        TicketChange::Reopen {
            ticket_id,
            reply_deadline_ms,
        } => {
            sqlx::query(
                "UPDATE tickets SET state = 'open', agent_id = NULL, resolution = NULL,
                     opened_at = $1, claimed_at = NULL, resolved_at = NULL, reopened = reopened + 1,
                     last_buyer_at = $1, reply_due_at = $2, deadline_notified = 0,
                     sla_level = 0, sla_next_at = $1, updated_at = $1
                 WHERE id = $3 AND state = 'resolved'",
            )
            .bind(now)
            .bind(now + reply_deadline_ms)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO escalations (conversation_id, reason, detail, created_at) VALUES ($1, 'reopened', $2, $3)",
            )
            .bind(conversation_id)
            .bind("the buyer wrote again soon after the ticket was resolved")
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sqlx::query("UPDATE conversations SET state = 'human', updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(conversation_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Store {
    /// One ticket.
    pub async fn ticket(&self, id: i64) -> Result<Option<Ticket>> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t JOIN conversations c ON c.id = t.conversation_id WHERE t.id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ticket_from).transpose()
    }

    /// The queue: most urgent first, then longest waiting.
    pub async fn tickets(
        &self,
        filter: TicketFilter,
        agent: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Ticket>> {
        let state = match filter {
            TicketFilter::Active => "t.state <> 'resolved'",
            TicketFilter::Open => "t.state = 'open'",
            TicketFilter::Claimed => "t.state = 'claimed'",
            TicketFilter::Resolved => "t.state = 'resolved'",
            TicketFilter::All => "1 = 1",
        };
        let order = if filter == TicketFilter::Resolved {
            "t.resolved_at DESC, t.id DESC"
        } else {
            "CASE t.state WHEN 'resolved' THEN 1 ELSE 0 END, t.priority, t.opened_at, t.id"
        };
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t JOIN conversations c ON c.id = t.conversation_id
             WHERE {state} AND ($1 = '' OR t.agent_id = $1)
             ORDER BY {order} LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ticket_from).collect()
    }

    /// A conversation's tickets, newest first.
    pub async fn conversation_tickets(&self, conversation_id: i64) -> Result<Vec<Ticket>> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t JOIN conversations c ON c.id = t.conversation_id
             WHERE t.conversation_id = $1 ORDER BY t.id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(conversation_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ticket_from).collect()
    }

    /// The ticket to reopen if the buyer writes now: the conversation's
    /// newest ticket, when an agent resolved it (not handed it back to the
    /// bot) at or after `since`.
    pub async fn reopenable_ticket(&self, conversation_id: i64, since: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT id, state, resolution, resolved_at FROM tickets
             WHERE conversation_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get(1)?;
        let resolution: Option<String> = row.try_get(2)?;
        let resolved_at: Option<i64> = row.try_get(3)?;
        let reopen = state == "resolved"
            && resolution.as_deref() == Some("resolved")
            && resolved_at.is_some_and(|at| at >= since);
        Ok(reopen.then(|| row.try_get(0)).transpose()?)
    }

    /// Claims an open ticket for `agent`. Exactly one of several agents
    /// claiming at once wins.
    pub async fn claim_ticket(&self, ticket_id: i64, agent: &str) -> Result<Claim> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE tickets SET state = 'claimed', agent_id = $1, claimed_at = $2, sla_next_at = NULL, updated_at = $2
             WHERE id = $3 AND state = 'open'",
        )
        .bind(agent)
        .bind(now)
        .bind(ticket_id)
        .execute(&self.pool)
        .await?;
        let Some(ticket) = self.ticket(ticket_id).await? else {
            return Ok(Claim::NotFound);
        };
        if done.rows_affected() == 1 {
            return Ok(Claim::Claimed(Box::new(ticket)));
        }
        Ok(match (ticket.state.as_str(), &ticket.agent_id) {
            ("claimed", Some(holder)) if holder == agent => Claim::Claimed(Box::new(ticket)),
            ("claimed", Some(holder)) => Claim::HeldBy(holder.clone()),
            _ => Claim::Resolved,
        })
    }

    /// Gives an unresolved ticket to `agent` (a supervisor's move).
    pub async fn assign_ticket(
        &self,
        ticket_id: i64,
        agent: &str,
    ) -> Result<std::result::Result<Ticket, Refusal>> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE tickets SET state = 'claimed', agent_id = $1, claimed_at = $2, sla_next_at = NULL, updated_at = $2
             WHERE id = $3 AND state <> 'resolved'",
        )
        .bind(agent)
        .bind(now)
        .bind(ticket_id)
        .execute(&self.pool)
        .await?;
        match self.ticket(ticket_id).await? {
            None => Ok(Err(Refusal::NotFound)),
            Some(t) if done.rows_affected() == 1 => Ok(Ok(t)),
            Some(_) => Ok(Err(Refusal::Resolved)),
        }
    }

    /// Explains why an action on a ticket held by someone else (or nobody)
    /// did not happen.
    async fn refusal(&self, ticket_id: i64) -> Result<Refusal> {
        Ok(match self.ticket(ticket_id).await? {
            None => Refusal::NotFound,
            Some(t) if t.state == "resolved" => Refusal::Resolved,
            Some(t) => Refusal::NotYours(t.agent_id),
        })
    }

    /// An agent's reply to the buyer: stored in the transcript and queued
    /// for delivery through the conversation's channel, in one
    /// transaction. Only the agent holding the ticket may reply. Returns
    /// the message id.
    pub async fn agent_reply(
        &self,
        ticket_id: i64,
        agent: &str,
        text: &str,
    ) -> Result<std::result::Result<i64, Refusal>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(
            "UPDATE tickets SET reply_due_at = NULL, updated_at = $1
             WHERE id = $2 AND state = 'claimed' AND agent_id = $3
             RETURNING conversation_id",
        )
        .bind(now)
        .bind(ticket_id)
        .bind(agent)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = held else {
            drop(tx);
            return Ok(Err(self.refusal(ticket_id).await?));
        };
        let conversation_id: i64 = row.try_get(0)?;
        let row = sqlx::query(
            "INSERT INTO messages (conversation_id, channel, author, agent_id, text, lang, created_at)
             SELECT id, channel, 'agent', $1, $2, lang, $3 FROM conversations WHERE id = $4
             RETURNING id, channel",
        )
        .bind(agent)
        .bind(text)
        .bind(now)
        .bind(conversation_id)
        .fetch_one(&mut *tx)
        .await?;
        let message_id: i64 = row.try_get(0)?;
        let channel: String = row.try_get(1)?;
        sqlx::query(
            "INSERT INTO outbox (conversation_id, message_id, channel, idempotency_key, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(conversation_id)
        .bind(message_id)
        .bind(&channel)
        .bind(format!("kefu-{channel}-{message_id}"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(message_id))
    }

    /// Settles a ticket. `resolution` is `resolved` (a buyer writing again
    /// soon reopens it) or `handed_back` (the bot answers again). The
    /// holder may settle it, anyone may settle an unclaimed one, a
    /// supervisor any.
    pub async fn settle_ticket(
        &self,
        ticket_id: i64,
        agent: &str,
        supervisor: bool,
        resolution: &str,
    ) -> Result<std::result::Result<Ticket, Refusal>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let who = if supervisor {
            ""
        } else {
            "AND (state = 'open' OR agent_id = $4)"
        };
        let sql = format!(
            "UPDATE tickets SET state = 'resolved', resolution = $1, resolved_at = $2,
                 agent_id = COALESCE(agent_id, $4), sla_next_at = NULL, reply_due_at = NULL, updated_at = $2
             WHERE id = $3 AND state <> 'resolved' {who}
             RETURNING conversation_id"
        );
        let settled = sqlx::query(&sql)
            .bind(resolution)
            .bind(now)
            .bind(ticket_id)
            .bind(agent)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = settled else {
            drop(tx);
            return Ok(Err(self.refusal(ticket_id).await?));
        };
        let conversation_id: i64 = row.try_get(0)?;
        sqlx::query("UPDATE conversations SET state = 'bot', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE escalations SET state = 'closed' WHERE conversation_id = $1")
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match self.ticket(ticket_id).await? {
            Some(t) => Ok(Ok(t)),
            None => Ok(Err(Refusal::NotFound)),
        }
    }

    /// Every time the conversation went to people: (reason, detail, when).
    pub async fn escalation_log(
        &self,
        conversation_id: i64,
    ) -> Result<Vec<(String, Option<String>, i64)>> {
        let rows = sqlx::query(
            "SELECT reason, detail, created_at FROM escalations WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    pub async fn add_note(&self, ticket_id: i64, agent: &str, text: &str) -> Result<Option<Note>> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO notes (ticket_id, agent_id, text, created_at)
             SELECT id, $1, $2, $3 FROM tickets WHERE id = $4
             RETURNING id",
        )
        .bind(agent)
        .bind(text)
        .bind(now)
        .bind(ticket_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Note {
                id: r.try_get(0)?,
                ticket_id,
                agent_id: agent.to_string(),
                text: text.to_string(),
                created_at: now,
            })
        })
        .transpose()
    }

    pub async fn notes(&self, ticket_id: i64) -> Result<Vec<Note>> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, agent_id, text, created_at FROM notes WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Note {
                    id: r.try_get(0)?,
                    ticket_id: r.try_get(1)?,
                    agent_id: r.try_get(2)?,
                    text: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn conversation_summary(&self, id: i64) -> Result<Option<ConversationSummary>> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| conversation_from(&r, 0)).transpose()
    }

    /// Conversations with a message matching the search, most recently
    /// active first.
    pub async fn search_conversations(
        &self,
        search: &Search,
        limit: i64,
    ) -> Result<Vec<ConversationSummary>> {
        let (clause, mut binds) = search_clauses(search);
        binds.push(Bind::Int(limit));
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c
             WHERE c.id IN (SELECT m.conversation_id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE {clause})
             ORDER BY c.updated_at DESC, c.id DESC LIMIT ${}",
            binds.len()
        );
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| conversation_from(r, 0)).collect()
    }

    /// Every message of every conversation the search finds (whole
    /// transcripts, not only the matching lines: a dispute needs the
    /// context), in conversation then message order, up to `limit` rows.
    pub async fn export(&self, search: &Search, limit: i64) -> Result<Vec<ExportRow>> {
        let (clause, mut binds) = search_clauses(search);
        binds.push(Bind::Int(limit));
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS},
                    m.id, m.author, m.agent_id, m.text, m.attachments, m.lang, m.intents, m.decision, m.created_at
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.conversation_id IN (SELECT m.conversation_id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE {clause})
             ORDER BY c.id, m.id LIMIT ${}",
            binds.len()
        );
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ExportRow {
                    conversation: conversation_from(r, 0)?,
                    line: super::TranscriptLine {
                        id: r.try_get(11)?,
                        author: r.try_get(12)?,
                        agent_id: r.try_get(13)?,
                        text: r.try_get(14)?,
                        attachments: r.try_get(15)?,
                        lang: r.try_get(16)?,
                        intents: r.try_get(17)?,
                        decision: r.try_get(18)?,
                        created_at: r.try_get(19)?,
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_searches_are_literal() {
        assert_eq!(contains_pattern("50%_OFF"), "%50\\%\\_off%");
    }

    #[test]
    fn search_numbers_its_placeholders_in_order() {
        let (clause, binds) = search_clauses(&Search {
            text: Some("refund".into()),
            buyer: Some("ana".into()),
            from: Some(5),
            ..Search::default()
        });
        assert_eq!(binds.len(), 4);
        assert!(clause.contains("LIKE $1"), "{clause}");
        assert!(clause.contains("c.buyer_id = $2"), "{clause}");
        assert!(clause.contains("LIKE $3"), "{clause}");
        assert!(clause.contains("m.created_at >= $4"), "{clause}");
    }
}
