//! The agent API: the ticket queue and what people do with it, transcript
//! search and export. Every route needs `Authorization: Bearer <token>`
//! (tokens come from `kefu agent add`); assigning needs a supervisor.
//!
//! Handlers translate between HTTP and the store's ticket operations; the
//! rules (who may claim, reply, settle) live in the store's conditional
//! updates so they also hold between kefu replicas.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, AppState};
use crate::agents::{CurrentAgent, Role};
use crate::lang::Lang;
use crate::store::{
    Claim, ConversationSummary, Note, Refusal, Search, Ticket, TicketFilter, TranscriptLine,
};

/// Longest reply an agent can send: the smallest limit of kefu's channels
/// (Telegram and WhatsApp take 4096 characters).
const MAX_REPLY_CHARS: usize = 4000;
const MAX_NOTE_CHARS: usize = 4000;
/// An export larger than this is refused: narrow the search.
const MAX_EXPORT_ROWS: i64 = 100_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/me", get(me))
        .route("/v1/tickets", get(list_tickets))
        .route("/v1/tickets/{id}", get(ticket_detail))
        .route("/v1/tickets/{id}/claim", post(claim))
        .route("/v1/tickets/{id}/assign", post(assign))
        .route("/v1/tickets/{id}/reply", post(reply))
        .route("/v1/tickets/{id}/phrases", get(phrases))
        .route("/v1/tickets/{id}/notes", post(add_note))
        .route("/v1/tickets/{id}/resolve", post(resolve))
        .route("/v1/tickets/{id}/handback", post(handback))
        .route("/v1/conversations", get(search_conversations))
        .route("/v1/conversations/{id}", get(conversation))
        .route("/v1/export", get(export))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(&e)
}

fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} `{raw}`: {what} ids are numbers"),
        )
    })
}

fn no_ticket(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no ticket {id}"),
    )
}

async fn load_ticket(state: &AppState, id: i64) -> Result<Ticket, ApiError> {
    state
        .store
        .ticket(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_ticket(id))
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("{e}; send a JSON object like {shape}"),
        )
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
}

fn refused(id: i64, refusal: Refusal, action: &str) -> ApiError {
    match refusal {
        Refusal::NotFound => no_ticket(id),
        Refusal::Resolved => ApiError::new(
            StatusCode::CONFLICT,
            "resolved",
            format!("ticket {id} is resolved; nothing to {action}"),
        ),
        Refusal::NotYours(Some(holder)) => ApiError::new(
            StatusCode::CONFLICT,
            "not_claimed_by_you",
            format!(
                "ticket {id} is held by `{holder}`; only they (or a supervisor) can {action} it"
            ),
        ),
        Refusal::NotYours(None) => ApiError::new(
            StatusCode::CONFLICT,
            "not_claimed_by_you",
            format!("ticket {id} is not claimed; claim it first, then {action}"),
        ),
    }
}

/// Who is logged in.
#[utoipa::path(get, path = "/v1/agent/me", security(("bearer" = [])),
    responses((status = 200, body = crate::agents::Agent), (status = 401, body = super::ErrorBody)))]
async fn me(CurrentAgent(agent): CurrentAgent) -> Json<crate::agents::Agent> {
    Json(agent)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
struct ListParams {
    /// active (open and claimed, the default), open, claimed, resolved or all
    state: Option<String>,
    /// Only tickets held by this agent; `me` for the caller.
    agent: Option<String>,
    /// At most this many (default 200).
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TicketList {
    tickets: Vec<Ticket>,
}

/// The queue: most urgent first, then longest waiting.
#[utoipa::path(get, path = "/v1/tickets", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = TicketList), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
async fn list_tickets(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<TicketList>, ApiError> {
    let params = query(params)?;
    let filter = match params.state.as_deref().unwrap_or("active") {
        "active" => TicketFilter::Active,
        "open" => TicketFilter::Open,
        "claimed" => TicketFilter::Claimed,
        "resolved" => TicketFilter::Resolved,
        "all" => TicketFilter::All,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("state={other}: use active, open, claimed, resolved or all"),
            ));
        }
    };
    let holder = match params.agent.as_deref() {
        Some("me") => Some(agent.id.clone()),
        other => other.map(str::to_string),
    };
    let limit = params.limit.unwrap_or(200).clamp(1, 1000);
    let tickets = state
        .store
        .tickets(filter, holder.as_deref(), limit)
        .await
        .map_err(internal)?;
    Ok(Json(TicketList { tickets }))
}

/// A transcript line as agents read it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Line {
    pub id: i64,
    /// buyer, bot or agent
    pub author: String,
    pub agent_id: Option<String>,
    pub text: String,
    pub lang: Option<String>,
    /// Intents kefu detected (buyer lines) or answered (bot lines).
    pub intents: Vec<String>,
    /// What kefu decided and why: action, reason, confidence, matched.
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    pub attachments: Vec<Value>,
    pub created_at: i64,
}

impl From<TranscriptLine> for Line {
    fn from(l: TranscriptLine) -> Line {
        fn json<T: serde::de::DeserializeOwned>(s: &Option<String>) -> Option<T> {
            s.as_deref().and_then(|s| serde_json::from_str(s).ok())
        }
        Line {
            intents: json(&l.intents).unwrap_or_default(),
            decision: json(&l.decision),
            attachments: json(&l.attachments).unwrap_or_default(),
            id: l.id,
            author: l.author,
            agent_id: l.agent_id,
            text: l.text,
            lang: l.lang,
            created_at: l.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationView {
    id: i64,
    channel: String,
    external_id: String,
    buyer: crate::model::Buyer,
    lang: Option<String>,
    /// bot (kefu answers) or human (people hold it; kefu stays silent)
    state: String,
    created_at: i64,
    updated_at: i64,
}

impl From<ConversationSummary> for ConversationView {
    fn from(c: ConversationSummary) -> ConversationView {
        ConversationView {
            id: c.id,
            channel: c.channel,
            external_id: c.external_id,
            buyer: crate::model::Buyer {
                id: c.buyer_id,
                name: c.buyer_name,
                locale: c.buyer_locale,
                country: c.buyer_country,
            },
            lang: c.lang,
            state: c.state,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct EscalationView {
    reason: String,
    detail: Option<String>,
    created_at: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TicketDetail {
    ticket: Ticket,
    conversation: ConversationView,
    transcript: Vec<Line>,
    /// Every time the conversation came to people, and why.
    escalations: Vec<EscalationView>,
    notes: Vec<Note>,
}

/// A ticket with its whole conversation: transcript (with the bot's
/// language, intents and decisions), escalation reasons and notes.
#[utoipa::path(get, path = "/v1/tickets/{id}", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = TicketDetail), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn ticket_detail(
    State(state): State<AppState>,
    CurrentAgent(_agent): CurrentAgent,
    Path(id): Path<String>,
) -> Result<Json<TicketDetail>, ApiError> {
    let id = parse_id(&id, "ticket")?;
    let ticket = load_ticket(&state, id).await?;
    let conversation = state
        .store
        .conversation_summary(ticket.conversation_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_ticket(id))?;
    let transcript = state
        .store
        .transcript(ticket.conversation_id)
        .await
        .map_err(internal)?;
    let escalations = state
        .store
        .escalation_log(ticket.conversation_id)
        .await
        .map_err(internal)?;
    let notes = state.store.notes(id).await.map_err(internal)?;
    Ok(Json(TicketDetail {
        ticket,
        conversation: conversation.into(),
        transcript: transcript.into_iter().map(Line::from).collect(),
        escalations: escalations
            .into_iter()
            .map(|(reason, detail, created_at)| EscalationView {
                reason,
                detail,
                created_at,
            })
            .collect(),
        notes,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct TicketBody {
    ticket: Ticket,
}

/// Take a ticket: exactly one of several agents claiming at once wins; the
/// others get 409 naming who holds it.
#[utoipa::path(post, path = "/v1/tickets/{id}/claim", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = TicketBody), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "already_claimed or resolved", body = super::ErrorBody)))]
async fn claim(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    Path(id): Path<String>,
) -> Result<Json<TicketBody>, ApiError> {
    let id = parse_id(&id, "ticket")?;
    match state
        .store
        .claim_ticket(id, &agent.id)
        .await
        .map_err(internal)?
    {
        Claim::Claimed(ticket) => {
            tracing::info!(ticket = id, agent = %agent.id, "ticket claimed");
            Ok(Json(TicketBody { ticket: *ticket }))
        }
        Claim::HeldBy(holder) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_claimed",
            format!("ticket {id} is already claimed by `{holder}`"),
        )),
        Claim::Resolved => Err(refused(id, Refusal::Resolved, "claim")),
        Claim::NotFound => Err(no_ticket(id)),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    /// The agent who takes the ticket over.
    agent: String,
}

/// Give a ticket to an agent (supervisors only).
#[utoipa::path(post, path = "/v1/tickets/{id}/assign", params(("id" = i64, Path)), request_body = AssignBody, security(("bearer" = [])),
    responses((status = 200, body = TicketBody), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
async fn assign(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<TicketBody>, ApiError> {
    agent.require(Role::Supervisor)?;
    let id = parse_id(&id, "ticket")?;
    let AssignBody { agent: to } = body(&raw, r#"{"agent": "bob"}"#)?;
    if state.agents.find(&to).await.map_err(internal)?.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_agent",
            format!("there is no agent `{to}`; `kefu agent list` shows who there is"),
        ));
    }
    match state.store.assign_ticket(id, &to).await.map_err(internal)? {
        Ok(ticket) => {
            tracing::info!(ticket = id, by = %agent.id, to = %to, "ticket assigned");
            Ok(Json(TicketBody { ticket }))
        }
        Err(refusal) => Err(refused(id, refusal, "assign")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Sent {
    /// The transcript id of the agent's message.
    message_id: i64,
}

fn checked_text(text: &str, max: usize, what: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_text",
            format!("the {what} is empty"),
        ));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_too_long",
            format!("the {what} has {chars} characters; at most {max} fit every channel. Split it"),
        ));
    }
    Ok(text.to_string())
}

/// Answer the buyer: stored in the transcript and delivered through the
/// conversation's channel (with retries). Only the agent holding the
/// ticket can reply.
#[utoipa::path(post, path = "/v1/tickets/{id}/reply", params(("id" = i64, Path)), request_body = TextBody, security(("bearer" = [])),
    responses((status = 202, body = Sent), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "not_claimed_by_you or resolved", body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
async fn reply(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let id = parse_id(&id, "ticket")?;
    let TextBody { text } = body(&raw, r#"{"text": "Hello! …"}"#)?;
    let text = checked_text(&text, MAX_REPLY_CHARS, "reply")?;
    match state
        .store
        .agent_reply(id, &agent.id, &text)
        .await
        .map_err(internal)?
    {
        Ok(message_id) => {
            state.outbox_wake.notify_one();
            tracing::info!(ticket = id, agent = %agent.id, message = message_id, "agent replied");
            Ok((StatusCode::ACCEPTED, Json(Sent { message_id })))
        }
        Err(refusal) => Err(refused(id, refusal, "reply to")),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Phrase {
    intent: String,
    /// The store's reply for this intent, in the buyer's language, ready
    /// to insert and edit.
    text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Phrases {
    lang: String,
    phrases: Vec<Phrase>,
}

/// Quick phrases: the reply templates in the buyer's language, filled with
/// the store's facts.
#[utoipa::path(get, path = "/v1/tickets/{id}/phrases", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Phrases), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn phrases(
    State(state): State<AppState>,
    CurrentAgent(_agent): CurrentAgent,
    Path(id): Path<String>,
) -> Result<Json<Phrases>, ApiError> {
    let id = parse_id(&id, "ticket")?;
    let ticket = load_ticket(&state, id).await?;
    let lang = ticket
        .lang
        .as_deref()
        .and_then(Lang::from_locale)
        .unwrap_or(state.engine.default_lang());
    let style = state
        .channels
        .get(&ticket.channel)
        .map(|c| c.style)
        .unwrap_or_default();
    let phrases = state
        .engine
        .phrases(lang, style, ticket.buyer_name.as_deref())
        .into_iter()
        .map(|(intent, text)| Phrase { intent, text })
        .collect();
    Ok(Json(Phrases {
        lang: lang.code().to_string(),
        phrases,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct NoteBody {
    note: Note,
}

/// A private note on the ticket; never sent to the buyer.
#[utoipa::path(post, path = "/v1/tickets/{id}/notes", params(("id" = i64, Path)), request_body = TextBody, security(("bearer" = [])),
    responses((status = 201, body = NoteBody), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
async fn add_note(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<(StatusCode, Json<NoteBody>), ApiError> {
    let id = parse_id(&id, "ticket")?;
    let TextBody { text } = body(&raw, r#"{"text": "asked for photos"}"#)?;
    let text = checked_text(&text, MAX_NOTE_CHARS, "note")?;
    let note = state
        .store
        .add_note(id, &agent.id, &text)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_ticket(id))?;
    Ok((StatusCode::CREATED, Json(NoteBody { note })))
}

async fn settle(
    state: &AppState,
    agent: &crate::agents::Agent,
    id: &str,
    resolution: &str,
    action: &str,
) -> Result<Json<TicketBody>, ApiError> {
    let id = parse_id(id, "ticket")?;
    let supervisor = agent.role == Role::Supervisor;
    match state
        .store
        .settle_ticket(id, &agent.id, supervisor, resolution)
        .await
        .map_err(internal)?
    {
        Ok(ticket) => {
            tracing::info!(ticket = id, agent = %agent.id, resolution, "ticket settled");
            Ok(Json(TicketBody { ticket }))
        }
        Err(refusal) => Err(refused(id, refusal, action)),
    }
}

/// Settle the ticket. If the buyer writes again within
/// `handover.reopen_within`, it reopens; later, the bot answers.
#[utoipa::path(post, path = "/v1/tickets/{id}/resolve", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = TicketBody), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn resolve(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    Path(id): Path<String>,
) -> Result<Json<TicketBody>, ApiError> {
    settle(&state, &agent, &id, "resolved", "resolve").await
}

/// Give the conversation back to the bot: it answers the buyer's next
/// message.
#[utoipa::path(post, path = "/v1/tickets/{id}/handback", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = TicketBody), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn handback(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    Path(id): Path<String>,
) -> Result<Json<TicketBody>, ApiError> {
    settle(&state, &agent, &id, "handed_back", "hand back").await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
struct SearchParams {
    /// Text a message contains (case-insensitive).
    q: Option<String>,
    /// The buyer's id, name, or the channel's conversation id.
    buyer: Option<String>,
    /// An order number mentioned in the conversation.
    order: Option<String>,
    /// From this day (YYYY-MM-DD, UTC) or instant (RFC 3339).
    from: Option<String>,
    /// Up to and including this day (YYYY-MM-DD, UTC) or before this instant.
    to: Option<String>,
    /// Export only: one conversation.
    conversation: Option<i64>,
    /// Export only: csv (default) or jsonl.
    format: Option<String>,
    limit: Option<i64>,
}

const DAY_MS: i64 = 86_400_000;

/// A day (`2026-11-22`, UTC midnight) or an RFC 3339 instant, as Unix ms;
/// `end_of_day` moves a bare day to the next midnight (inclusive "to").
fn parse_when(key: &str, raw: &str, end_of_day: bool) -> Result<i64, ApiError> {
    let raw = raw.trim();
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "{key}={raw}: write a day like 2026-11-22 or an instant like 2026-11-22T08:00:00Z"
            ),
        )
    };
    let is_day = raw.len() == 10 && raw.as_bytes()[4] == b'-' && raw.as_bytes()[7] == b'-';
    let text = if is_day {
        format!("{raw}T00:00:00Z")
    } else {
        raw.to_string()
    };
    let at = humantime::parse_rfc3339_weak(&text).map_err(|_| bad())?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis() as i64;
    Ok(if is_day && end_of_day {
        ms + DAY_MS
    } else {
        ms
    })
}

fn to_search(p: &SearchParams) -> Result<Search, ApiError> {
    let text = |v: &Option<String>| {
        v.as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Ok(Search {
        text: text(&p.q),
        buyer: text(&p.buyer),
        order: text(&p.order),
        from: p
            .from
            .as_deref()
            .map(|v| parse_when("from", v, false))
            .transpose()?,
        to: p
            .to
            .as_deref()
            .map(|v| parse_when("to", v, true))
            .transpose()?,
        conversation: p.conversation,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationList {
    conversations: Vec<ConversationSummary>,
}

/// Search transcripts by text, buyer, order number and date.
#[utoipa::path(get, path = "/v1/conversations", params(SearchParams), security(("bearer" = [])),
    responses((status = 200, body = ConversationList), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
async fn search_conversations(
    State(state): State<AppState>,
    CurrentAgent(_agent): CurrentAgent,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<ConversationList>, ApiError> {
    let params = query(params)?;
    let search = to_search(&params)?;
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    let conversations = state
        .store
        .search_conversations(&search, limit)
        .await
        .map_err(internal)?;
    Ok(Json(ConversationList { conversations }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationDetail {
    conversation: ConversationView,
    transcript: Vec<Line>,
    tickets: Vec<Ticket>,
}

/// A conversation's transcript and tickets.
#[utoipa::path(get, path = "/v1/conversations/{id}", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = ConversationDetail), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn conversation(
    State(state): State<AppState>,
    CurrentAgent(_agent): CurrentAgent,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let id = parse_id(&id, "conversation")?;
    let conversation = state
        .store
        .conversation_summary(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no conversation {id}"),
            )
        })?;
    let transcript = state.store.transcript(id).await.map_err(internal)?;
    let tickets = state
        .store
        .conversation_tickets(id)
        .await
        .map_err(internal)?;
    Ok(Json(ConversationDetail {
        conversation: conversation.into(),
        transcript: transcript.into_iter().map(Line::from).collect(),
        tickets,
    }))
}

/// One exported message.
#[derive(Serialize)]
struct ExportRecord<'a> {
    conversation_id: i64,
    channel: &'a str,
    conversation: &'a str,
    buyer_id: Option<&'a str>,
    buyer_name: Option<&'a str>,
    message_id: i64,
    /// RFC 3339, UTC.
    time: String,
    author: &'a str,
    agent_id: Option<&'a str>,
    lang: Option<&'a str>,
    /// Intents as a JSON array.
    intents: Option<&'a str>,
    text: &'a str,
    /// Attachments as a JSON array.
    attachments: Option<&'a str>,
}

fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Whole transcripts of the conversations a search finds, one row per
/// message, as CSV or JSON Lines: evidence for a dispute.
#[utoipa::path(get, path = "/v1/export", params(SearchParams), security(("bearer" = [])),
    responses((status = 200, description = "text/csv or application/x-ndjson", content_type = "text/csv"),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 413, body = super::ErrorBody)))]
async fn export(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let search = to_search(&params)?;
    let format = params.format.as_deref().unwrap_or("csv");
    if !matches!(format, "csv" | "jsonl") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("format={format}: use csv or jsonl"),
        ));
    }
    let rows = state
        .store
        .export(&search, MAX_EXPORT_ROWS + 1)
        .await
        .map_err(internal)?;
    if rows.len() as i64 > MAX_EXPORT_ROWS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "export_too_large",
            format!(
                "more than {MAX_EXPORT_ROWS} messages match; narrow the search (conversation, buyer, from/to)"
            ),
        ));
    }
    tracing::info!(agent = %agent.id, rows = rows.len(), format, "transcripts exported");
    let records = rows.iter().map(|r| ExportRecord {
        conversation_id: r.conversation.id,
        channel: &r.conversation.channel,
        conversation: &r.conversation.external_id,
        buyer_id: r.conversation.buyer_id.as_deref(),
        buyer_name: r.conversation.buyer_name.as_deref(),
        message_id: r.line.id,
        time: rfc3339(r.line.created_at),
        author: &r.line.author,
        agent_id: r.line.agent_id.as_deref(),
        lang: r.line.lang.as_deref(),
        intents: r.line.intents.as_deref(),
        text: &r.line.text,
        attachments: r.line.attachments.as_deref(),
    });
    let (content_type, extension, bytes) = if format == "jsonl" {
        let mut out = Vec::new();
        for record in records {
            serde_json::to_writer(&mut out, &record).map_err(internal)?;
            out.push(b'\n');
        }
        ("application/x-ndjson", "jsonl", out)
    } else {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in records {
            writer.serialize(record).map_err(internal)?;
        }
        let out = writer.into_inner().map_err(internal)?;
        ("text/csv; charset=utf-8", "csv", out)
    };
    let name = match search.conversation {
        Some(id) => format!("kefu-conversation-{id}.{extension}"),
        None => format!("kefu-transcripts.{extension}"),
    };
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// The bearer scheme for the OpenAPI description.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An agent token from `kefu agent add`"))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_instants() {
        assert_eq!(parse_when("from", "1970-01-02", false).unwrap(), DAY_MS);
        assert_eq!(parse_when("to", "1970-01-02", true).unwrap(), 2 * DAY_MS);
        assert_eq!(
            parse_when("from", "1970-01-01T00:00:01Z", false).unwrap(),
            1000
        );
        let err = parse_when("from", "yesterday", false).unwrap_err();
        assert!(err.message.contains("2026-11-22"), "{}", err.message);
    }

    #[test]
    fn lines_parse_their_json_columns_and_survive_bad_ones() {
        let line = Line::from(TranscriptLine {
            id: 1,
            author: "buyer".into(),
            agent_id: None,
            text: "hi".into(),
            attachments: Some(r#"[{"type":"image"}]"#.into()),
            lang: Some("en".into()),
            intents: Some(r#"["greeting"]"#.into()),
            decision: Some("not json".into()),
            created_at: 5,
        });
        assert_eq!(line.intents, vec!["greeting".to_string()]);
        assert_eq!(line.decision, None);
        assert_eq!(line.attachments.len(), 1);
    }
}
