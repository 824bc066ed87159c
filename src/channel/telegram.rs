//! Telegram Bot API channel: long polling `getUpdates` in, `sendMessage` out.
//!
//! In: [`poll`] asks `{base}/bot{token}/getUpdates` for new `message` updates
//! with a long-poll timeout of [`LONG_POLL_SECS`], hands each buyer message
//! to the intake (waiting when the queue is full) and only then persists the
//! next offset as the cursor `telegram:{channel}`. A crash between the two
//! fetches the update again and the store drops it as a duplicate (message
//! ids are `{chat_id}:{message_id}`), so nothing is lost or answered twice.
//! Messages from bots (kefu's own echoes, other bots) are skipped.
//!
//! Out: [`deliver`] POSTs `{chat_id, text}` to `sendMessage`. Telegram's
//! `retry_after` is passed on to the outbox; other 4xx (blocked by the user,
//! chat not found, bad token) are permanent; 5xx and network errors are
//! transient.
//!
//! The bot token is part of every URL, so no error message or log line
//! built here carries a URL, and answers are scrubbed of the token.

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{DeliveryError, retry_after};
use crate::backoff;
use crate::config::ChannelConfig;
use crate::model::{Buyer, Delivery, InboundMessage};
use crate::pipeline::{Intake, IntakeError, Intook, WhenFull};
use crate::store::Store;

/// The real Bot API, used when `base_url` is empty.
pub const DEFAULT_BASE_URL: &str = "https://api.telegram.org";

/// How long Telegram may hold a `getUpdates` request open when there is
/// nothing new. Fixed rather than configured: a long hold costs nothing and
/// answers a buyer as soon as they write; stopping does not wait for it.
pub const LONG_POLL_SECS: u64 = 25;

/// Extra time on top of the long poll before the request counts as lost
/// (the client's usual timeout is far shorter than a long poll).
const REQUEST_SLACK: Duration = Duration::from_secs(10);

/// Backoff after failed polls: doubling from the base, capped, reset after
/// a success.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The persisted poller position of a channel.
pub fn cursor_name(channel: &str) -> String {
    format!("telegram:{channel}")
}

/// `{base}/bot{token}/{method}`. Secret: never log it.
fn method_url(channel: &ChannelConfig, method: &str) -> String {
    let base = match channel.base_url.trim_end_matches('/') {
        "" => DEFAULT_BASE_URL,
        base => base,
    };
    format!("{base}/bot{}/{method}", channel.token)
}

/// Removes the bot token (and its secret half, which is what a
/// percent-encoded URL would still show) from text headed for logs or the
/// store.
fn scrub(text: &str, token: &str) -> String {
    let mut text = text.to_string();
    if !token.is_empty() {
        text = text.replace(token, "<token>");
        if let Some((_, secret)) = token.split_once(':') {
            if !secret.is_empty() {
                text = text.replace(secret, "<token>");
            }
        }
    }
    text
}

/// A request error without its URL (which holds the token), with its causes
/// ("connection refused" is more useful than "error sending request").
fn describe(err: reqwest::Error, token: &str) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    scrub(&text, token)
}

// ---------------------------------------------------------------------------
// Answers

/// The Bot API's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// A call Telegram did not carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: reqwest::StatusCode,
    /// Telegram's `parameters.retry_after`, else the `Retry-After` header.
    retry_after: Option<Duration>,
    /// Telegram's description (or the start of the body), without the token.
    description: String,
}

/// Reads an answer: `result` when `ok` is true, else why not. `header_after`
/// is the HTTP `Retry-After`, used when the body does not say.
fn read_answer(
    status: reqwest::StatusCode,
    header_after: Option<Duration>,
    body: &str,
    token: &str,
) -> Result<Value, Refusal> {
    let envelope = match serde_json::from_str::<Envelope>(body) {
        Ok(e) => e,
        Err(_) => {
            // Not the Bot API talking (a proxy, a load balancer): go by the
            // HTTP status; a "success" without Telegram's answer proves
            // nothing, so it counts as a gateway failure.
            let status = if status.is_success() {
                reqwest::StatusCode::BAD_GATEWAY
            } else {
                status
            };
            let start: String = body.chars().take(200).collect();
            return Err(Refusal {
                status,
                retry_after: header_after,
                description: scrub(&format!("not a Bot API answer: {start}"), token),
            });
        }
    };
    if envelope.ok {
        return Ok(envelope.result);
    }
    let status = envelope
        .error_code
        .and_then(|c| reqwest::StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(if status.is_success() {
            // ok:false with a 2xx status and no usable code: odd; retrying
            // is the safe side.
            reqwest::StatusCode::BAD_GATEWAY
        } else {
            status
        });
    let retry_after = envelope
        .parameters
        .and_then(|p| p.retry_after)
        .map(Duration::from_secs)
        .or(header_after);
    let description = envelope
        .description
        .unwrap_or_else(|| "no description".to_string());
    Err(Refusal {
        status,
        retry_after,
        description: scrub(&description, token),
    })
}

/// What the operator can do about a refusal, when it is clear.
fn hint(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 404 => " (check the channel's bot token)",
        409 => {
            " (another program polls this bot, or a webhook is set: stop it or call deleteWebhook)"
        }
        _ => "",
    }
}

// ---------------------------------------------------------------------------
// Out

#[derive(Debug, Serialize)]
struct SendMessage<'a> {
    chat_id: Value,
    text: &'a str,
}

/// Chat ids are integers (negative for groups); anything else (`@channel`)
/// is passed on as a string.
fn chat_id(external_id: &str) -> Value {
    match external_id.parse::<i64>() {
        Ok(id) => Value::from(id),
        Err(_) => Value::from(external_id),
    }
}

pub async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelConfig,
    delivery: &Delivery,
) -> Result<(), DeliveryError> {
    let body = SendMessage {
        chat_id: chat_id(&delivery.conversation_external_id),
        text: &delivery.text,
    };
    let response = http
        .post(method_url(channel, "sendMessage"))
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            DeliveryError::transient(format!(
                "telegram sendMessage: {}",
                describe(e, &channel.token)
            ))
        })?;
    let status = response.status();
    let after = retry_after(response.headers());
    let text = response.text().await.map_err(|e| {
        DeliveryError::transient(format!(
            "telegram sendMessage: reading the answer: {}",
            describe(e, &channel.token)
        ))
    })?;
    match read_answer(status, after, &text, &channel.token) {
        Ok(_) => Ok(()),
        Err(refusal) => Err(delivery_error(refusal)),
    }
}

fn delivery_error(refusal: Refusal) -> DeliveryError {
    let mut err =
        DeliveryError::from_status(refusal.status, refusal.retry_after, &refusal.description);
    err.message = format!(
        "telegram sendMessage: {}{}",
        err.message,
        hint(refusal.status)
    );
    err
}

// ---------------------------------------------------------------------------
// In

/// One update; only `message` updates are asked for, others are skipped.
#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    #[serde(default)]
    date: Option<i64>,
    chat: Chat,
    #[serde(default)]
    from: Option<User>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    /// One entry per size, smallest first.
    #[serde(default)]
    photo: Vec<FileRef>,
    #[serde(default)]
    document: Option<FileRef>,
    #[serde(default)]
    video: Option<FileRef>,
    #[serde(default)]
    voice: Option<FileRef>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Debug, Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FileRef {
    file_id: String,
}

/// What to do with one update.
#[derive(Debug, Clone, PartialEq)]
enum Handling {
    Accept(Box<InboundMessage>),
    /// Nothing to answer; the reason is for the debug log.
    Skip(&'static str),
}

/// Turns an update into a buyer message (pure).
fn handling(channel: &str, update: &Update) -> Handling {
    let Some(raw) = &update.message else {
        return Handling::Skip("not a message");
    };
    let Ok(message) = Message::deserialize(raw) else {
        return Handling::Skip("unreadable message");
    };
    if message.from.as_ref().is_some_and(|f| f.is_bot) {
        return Handling::Skip("from a bot");
    }
    let attachments = attachments(&message);
    let text = message.text.or(message.caption).unwrap_or_default();
    if text.trim().is_empty() && attachments.is_empty() {
        // Stickers, locations, members joining: nothing kefu can answer.
        return Handling::Skip("no text or attachment");
    }
    let buyer = message
        .from
        .map(|from| Buyer {
            id: Some(from.id.to_string()),
            name: display_name(&from),
            locale: from.language_code.filter(|l| !l.is_empty()),
            country: None,
        })
        .unwrap_or_default();
    Handling::Accept(Box::new(InboundMessage {
        channel: channel.to_string(),
        message_id: format!("{}:{}", message.chat.id, message.message_id),
        conversation_id: message.chat.id.to_string(),
        text,
        buyer,
        sent_at: message.date.map(|s| s.saturating_mul(1000)),
        attachments,
    }))
}

fn display_name(user: &User) -> Option<String> {
    let full = match &user.last_name {
        Some(last) if !last.is_empty() => format!("{} {last}", user.first_name),
        _ => user.first_name.clone(),
    };
    let full = full.trim();
    if full.is_empty() {
        user.username.clone().filter(|u| !u.is_empty())
    } else {
        Some(full.to_string())
    }
}

/// Files as short transcript entries: type and file id (enough for an agent
/// to fetch them with `getFile`).
fn attachments(message: &Message) -> Vec<Value> {
    let entry =
        |kind: &str, file: &FileRef| serde_json::json!({"type": kind, "file_id": file.file_id});
    let mut out = Vec::new();
    // The last photo size is the largest.
    if let Some(photo) = message.photo.last() {
        out.push(entry("photo", photo));
    }
    for (kind, file) in [
        ("document", &message.document),
        ("video", &message.video),
        ("voice", &message.voice),
    ] {
        if let Some(file) = file {
            out.push(entry(kind, file));
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct GetUpdates {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    timeout: u64,
    allowed_updates: [&'static str; 1],
}

/// Why a poll round ended early.
enum PollError {
    /// Telegram asked to wait this long.
    RetryAfter(Duration),
    /// Anything else: back off.
    Failed(String),
    /// kefu is stopping.
    Stopping,
}

/// Runs `fut` unless `stopping` turns true (or its sender is gone) first.
async fn unless_stopping<F: Future>(
    stopping: &mut watch::Receiver<bool>,
    fut: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = stopping.wait_for(|s| *s) => None,
        out = fut => Some(out),
    }
}

/// Polls `getUpdates` until `stopping` turns true.
///
/// `channel.poll_ms` is the least time between two polls that found
/// nothing: the real API holds an empty poll for [`LONG_POLL_SECS`], so it
/// only matters against servers that answer at once.
pub async fn poll(
    name: String,
    channel: ChannelConfig,
    http: reqwest::Client,
    intake: Intake,
    store: Store,
    mut stopping: watch::Receiver<bool>,
) {
    let poller = Poller {
        cursor: cursor_name(&name),
        name,
        channel,
        http,
        intake,
        store,
    };
    let Some(mut offset) = poller.load_offset(&mut stopping).await else {
        return;
    };
    tracing::info!(channel = %poller.name, offset, "telegram poller started");
    let idle_gap = Duration::from_millis(poller.channel.poll_ms);
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let wait = match poller.round(&mut offset, &mut stopping).await {
            Ok(0) => {
                failures = 0;
                idle_gap.saturating_sub(started.elapsed())
            }
            Ok(_) => {
                failures = 0;
                Duration::ZERO
            }
            Err(PollError::Stopping) => break,
            Err(PollError::RetryAfter(wait)) => {
                tracing::warn!(
                    channel = %poller.name,
                    seconds = wait.as_secs(),
                    "telegram asks to wait before polling again"
                );
                wait.max(BACKOFF_BASE)
            }
            Err(PollError::Failed(error)) => {
                failures = failures.saturating_add(1);
                let wait = backoff::delay(failures, BACKOFF_BASE, BACKOFF_MAX, backoff::jitter());
                tracing::warn!(
                    channel = %poller.name,
                    failures,
                    retry_in_ms = wait.as_millis() as u64,
                    %error,
                    "telegram poll failed"
                );
                wait
            }
        };
        if unless_stopping(&mut stopping, tokio::time::sleep(wait))
            .await
            .is_none()
        {
            break;
        }
    }
    tracing::info!(channel = %poller.name, offset, "telegram poller stopped");
}

struct Poller {
    name: String,
    cursor: String,
    channel: ChannelConfig,
    http: reqwest::Client,
    intake: Intake,
    store: Store,
}

impl Poller {
    /// The persisted offset (None: never polled), retried until the store
    /// answers; returns None only when stopping.
    async fn load_offset(&self, stopping: &mut watch::Receiver<bool>) -> Option<Option<i64>> {
        let mut failures = 0u32;
        loop {
            match self.store.cursor(&self.cursor).await {
                Ok(None) => return Some(None),
                Ok(Some(value)) => match value.trim().parse::<i64>() {
                    Ok(offset) => return Some(Some(offset)),
                    Err(_) => {
                        // Starting over is safe: what was accepted before is
                        // dropped as a duplicate.
                        tracing::error!(
                            channel = %self.name,
                            cursor = %self.cursor,
                            "stored telegram offset is not a number; \
                             polling from Telegram's oldest unconfirmed update"
                        );
                        return Some(None);
                    }
                },
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(
                        channel = %self.name,
                        error = %e,
                        "cannot read the telegram offset"
                    );
                    let wait =
                        backoff::delay(failures, BACKOFF_BASE, BACKOFF_MAX, backoff::jitter());
                    unless_stopping(stopping, tokio::time::sleep(wait)).await?;
                }
            }
        }
    }

    /// One `getUpdates` and its updates, in order. Returns how many updates
    /// were taken.
    async fn round(
        &self,
        offset: &mut Option<i64>,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<usize, PollError> {
        let updates = unless_stopping(stopping, self.fetch(*offset))
            .await
            .ok_or(PollError::Stopping)??;
        let count = updates.len();
        for raw in updates {
            if *stopping.borrow() {
                // The rest is fetched again on the next start.
                return Err(PollError::Stopping);
            }
            self.take(raw, offset).await?;
        }
        if count > 0 {
            tracing::debug!(channel = %self.name, updates = count, "telegram updates taken");
        }
        Ok(count)
    }

    async fn fetch(&self, offset: Option<i64>) -> Result<Vec<Value>, PollError> {
        let body = GetUpdates {
            offset,
            timeout: LONG_POLL_SECS,
            allowed_updates: ["message"],
        };
        let token = &self.channel.token;
        let response = self
            .http
            .post(method_url(&self.channel, "getUpdates"))
            .json(&body)
            .timeout(Duration::from_secs(LONG_POLL_SECS) + REQUEST_SLACK)
            .send()
            .await
            .map_err(|e| PollError::Failed(describe(e, token)))?;
        let status = response.status();
        let after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| PollError::Failed(describe(e, token)))?;
        match read_answer(status, after, &text, token) {
            Ok(Value::Array(updates)) => Ok(updates),
            Ok(_) => Err(PollError::Failed(
                "getUpdates answered ok without a list of updates".into(),
            )),
            Err(refusal) => match refusal.retry_after {
                Some(wait) if refusal.status == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    Err(PollError::RetryAfter(wait))
                }
                _ => Err(PollError::Failed(format!(
                    "getUpdates: HTTP {}: {}{}",
                    refusal.status,
                    refusal.description,
                    hint(refusal.status)
                ))),
            },
        }
    }

    /// Hands one update to the intake, then moves the persisted offset past
    /// it. On an error the offset stays, so the update is fetched again.
    async fn take(&self, raw: Value, offset: &mut Option<i64>) -> Result<(), PollError> {
        let update = Update::deserialize(&raw).map_err(|e| {
            // Without its update_id an update cannot even be skipped.
            PollError::Failed(format!("an update without a readable update_id: {e}"))
        })?;
        match handling(&self.name, &update) {
            Handling::Accept(message) => {
                let chat = message.conversation_id.clone();
                match self.intake.accept(*message, WhenFull::Wait).await {
                    Ok(outcome) => {
                        let outcome = match outcome {
                            Intook::Accepted => "accepted",
                            Intook::Duplicate => "duplicate",
                            Intook::OwnEcho => "own_echo",
                        };
                        tracing::debug!(
                            channel = %self.name,
                            update = update.update_id,
                            %chat,
                            outcome,
                            "telegram message"
                        );
                    }
                    Err(IntakeError::Closed) => return Err(PollError::Stopping),
                    Err(e) => {
                        return Err(PollError::Failed(format!(
                            "update {}: {e}",
                            update.update_id
                        )));
                    }
                }
            }
            Handling::Skip(reason) => {
                tracing::debug!(
                    channel = %self.name,
                    update = update.update_id,
                    reason,
                    "telegram update skipped"
                );
            }
        }
        let next = update.update_id.saturating_add(1);
        // Never move backwards if a server repeats an old update.
        let next = offset.map_or(next, |o| o.max(next));
        self.store
            .set_cursor(&self.cursor, &next.to_string())
            .await
            .map_err(|e| PollError::Failed(format!("saving the telegram offset: {e}")))?;
        *offset = Some(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use serde_json::json;

    fn update(message: Value) -> Update {
        Update {
            update_id: 7,
            message: Some(message),
        }
    }

    fn accepted(h: Handling) -> InboundMessage {
        match h {
            Handling::Accept(m) => *m,
            Handling::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn a_text_message_becomes_a_buyer_message() {
        let msg = accepted(handling(
            "tg",
            &update(json!({
                "message_id": 42, "date": 1_795_341_600,
                "chat": {"id": 1001, "type": "private"},
                "from": {"id": 1001, "is_bot": false, "first_name": "Ana", "last_name": "Lima", "language_code": "pt-br"},
                "text": "cadê meu pedido?"
            })),
        ));
        assert_eq!(msg.channel, "tg");
        assert_eq!(msg.message_id, "1001:42");
        assert_eq!(msg.conversation_id, "1001");
        assert_eq!(msg.text, "cadê meu pedido?");
        assert_eq!(msg.sent_at, Some(1_795_341_600_000));
        assert_eq!(
            msg.buyer,
            Buyer {
                id: Some("1001".into()),
                name: Some("Ana Lima".into()),
                locale: Some("pt-br".into()),
                country: None,
            }
        );
        assert!(msg.attachments.is_empty());
    }

    #[test]
    fn updates_are_accepted_or_skipped() {
        struct Case {
            name: &'static str,
            message: Option<Value>,
            expect: Result<(&'static str, Vec<Value>), &'static str>,
        }
        let chat = json!({"id": -100, "type": "group"});
        let cases = [
            Case {
                name: "caption and the largest photo",
                message: Some(
                    json!({"message_id": 1, "chat": chat, "from": {"id": 5, "is_bot": false, "first_name": "Bo"},
                        "caption": "it arrived broken", "photo": [{"file_id": "small"}, {"file_id": "large"}]}),
                ),
                expect: Ok((
                    "it arrived broken",
                    vec![json!({"type": "photo", "file_id": "large"})],
                )),
            },
            Case {
                name: "a document alone",
                message: Some(
                    json!({"message_id": 2, "chat": chat, "from": {"id": 5, "is_bot": false, "first_name": "Bo"},
                        "document": {"file_id": "doc1", "file_name": "invoice.pdf"}}),
                ),
                expect: Ok(("", vec![json!({"type": "document", "file_id": "doc1"})])),
            },
            Case {
                name: "no sender (anonymous admin) is still a message",
                message: Some(json!({"message_id": 3, "chat": chat, "text": "hello"})),
                expect: Ok(("hello", vec![])),
            },
            Case {
                name: "bots are skipped",
                message: Some(
                    json!({"message_id": 4, "chat": chat, "from": {"id": 9, "is_bot": true, "first_name": "Shop"}, "text": "hi"}),
                ),
                expect: Err("from a bot"),
            },
            Case {
                name: "a sticker has nothing to answer",
                message: Some(
                    json!({"message_id": 5, "chat": chat, "from": {"id": 5, "is_bot": false, "first_name": "Bo"}, "sticker": {"file_id": "s"}}),
                ),
                expect: Err("no text or attachment"),
            },
            Case {
                name: "blank text",
                message: Some(json!({"message_id": 6, "chat": chat, "text": "  "})),
                expect: Err("no text or attachment"),
            },
            Case {
                name: "unreadable message",
                message: Some(json!({"message_id": "x", "chat": chat, "text": "hi"})),
                expect: Err("unreadable message"),
            },
            Case {
                name: "not a message",
                message: None,
                expect: Err("not a message"),
            },
        ];
        for case in cases {
            let got = handling(
                "tg",
                &Update {
                    update_id: 1,
                    message: case.message,
                },
            );
            match (got, case.expect) {
                (Handling::Accept(m), Ok((text, attachments))) => {
                    assert_eq!(m.text, text, "{}", case.name);
                    assert_eq!(m.attachments, attachments, "{}", case.name);
                    assert_eq!(m.conversation_id, "-100", "{}", case.name);
                }
                (Handling::Skip(why), Err(expect)) => assert_eq!(why, expect, "{}", case.name),
                (got, expect) => panic!("{}: got {got:?}, expected {expect:?}", case.name),
            }
        }
    }

    #[test]
    fn names_fall_back_to_the_username() {
        let user = |first: &str, last: Option<&str>, username: Option<&str>| User {
            id: 1,
            is_bot: false,
            first_name: first.into(),
            last_name: last.map(Into::into),
            username: username.map(Into::into),
            language_code: None,
        };
        let table = [
            (user("Ana", None, Some("ana")), Some("Ana")),
            (user("Ana", Some("Lima"), None), Some("Ana Lima")),
            (user("", None, Some("ana_l")), Some("ana_l")),
            (user(" ", Some(""), None), None),
        ];
        for (user, expect) in table {
            assert_eq!(display_name(&user).as_deref(), expect, "{user:?}");
        }
    }

    #[test]
    fn answers_are_classified() {
        struct Case {
            name: &'static str,
            status: StatusCode,
            header_after: Option<u64>,
            body: &'static str,
            /// (status, retry_after seconds, permanent) of the delivery error.
            expect: Option<(u16, Option<u64>, bool)>,
        }
        let cases = [
            Case {
                name: "ok",
                status: StatusCode::OK,
                header_after: None,
                body: r#"{"ok":true,"result":{"message_id":1}}"#,
                expect: None,
            },
            Case {
                name: "flood control",
                status: StatusCode::TOO_MANY_REQUESTS,
                header_after: None,
                body: r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
                expect: Some((429, Some(3), false)),
            },
            Case {
                name: "the header is used when the body does not say",
                status: StatusCode::TOO_MANY_REQUESTS,
                header_after: Some(4),
                body: r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#,
                expect: Some((429, Some(4), false)),
            },
            Case {
                name: "blocked by the user",
                status: StatusCode::FORBIDDEN,
                header_after: None,
                body: r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#,
                expect: Some((403, None, true)),
            },
            Case {
                name: "chat not found",
                status: StatusCode::BAD_REQUEST,
                header_after: None,
                body: r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
                expect: Some((400, None, true)),
            },
            Case {
                name: "server trouble",
                status: StatusCode::BAD_GATEWAY,
                header_after: None,
                body: r#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#,
                expect: Some((502, None, false)),
            },
            Case {
                name: "a proxy's HTML error page",
                status: StatusCode::SERVICE_UNAVAILABLE,
                header_after: None,
                body: "<html>down</html>",
                expect: Some((503, None, false)),
            },
            Case {
                name: "a 200 that is not the Bot API",
                status: StatusCode::OK,
                header_after: None,
                body: "<html>welcome</html>",
                expect: Some((502, None, false)),
            },
            Case {
                name: "ok false with a 200 and no code",
                status: StatusCode::OK,
                header_after: None,
                body: r#"{"ok":false}"#,
                expect: Some((502, None, false)),
            },
        ];
        for case in cases {
            let got = read_answer(
                case.status,
                case.header_after.map(Duration::from_secs),
                case.body,
                "123:ABC",
            )
            .map_err(delivery_error);
            match (got, case.expect) {
                (Ok(_), None) => {}
                (Err(e), Some((status, after, permanent))) => {
                    assert!(
                        e.message.contains(&format!("HTTP {status}")),
                        "{}: {}",
                        case.name,
                        e.message
                    );
                    assert_eq!(
                        e.retry_after,
                        after.map(Duration::from_secs),
                        "{}",
                        case.name
                    );
                    assert_eq!(e.permanent, permanent, "{}", case.name);
                }
                (got, expect) => panic!("{}: got {got:?}, expected {expect:?}", case.name),
            }
        }
    }

    #[test]
    fn the_token_never_leaks_into_messages() {
        let token = "123456:AAE-secret_part";
        let body = r#"{"ok":false,"error_code":404,"description":"Not Found: /bot123456:AAE-secret_part/sendMessage and /bot123456%3AAAE-secret_part/x"}"#;
        let err = read_answer(StatusCode::NOT_FOUND, None, body, token)
            .map_err(delivery_error)
            .unwrap_err();
        assert!(!err.message.contains("secret_part"), "{}", err.message);
        assert!(err.message.contains("check the channel's bot token"));
        let html = read_answer(
            StatusCode::NOT_FOUND,
            None,
            "Cannot POST /bot123456:AAE-secret_part/sendMessage",
            token,
        )
        .unwrap_err();
        assert!(!html.description.contains("secret_part"));
        assert_eq!(scrub("nothing to hide", ""), "nothing to hide");
    }

    #[tokio::test]
    async fn network_errors_say_why_without_the_url() {
        // A port nobody listens on: bind, note it, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let channel: ChannelConfig = toml::from_str(&format!(
            "kind = \"telegram\"\ntoken = \"123456:AAE-secret_part\"\nbase_url = \"http://127.0.0.1:{port}\""
        ))
        .unwrap();
        let delivery = Delivery {
            outbox_id: 1,
            conversation_id: 1,
            channel: "tg".into(),
            conversation_external_id: "1001".into(),
            buyer_id: None,
            text: "hi".into(),
            idempotency_key: "k".into(),
            attempts: 0,
        };
        let err = deliver(&reqwest::Client::new(), &channel, &delivery)
            .await
            .unwrap_err();
        assert!(!err.permanent);
        assert!(!err.message.contains("secret_part"), "{}", err.message);
        assert!(!err.message.contains("/bot"), "{}", err.message);
        assert!(
            err.message.to_lowercase().contains("connect"),
            "{}",
            err.message
        );
    }

    #[test]
    fn urls_and_chat_ids() {
        let mut channel: ChannelConfig =
            toml::from_str("kind = \"telegram\"\ntoken = \"1:X\"").unwrap();
        assert_eq!(
            method_url(&channel, "getUpdates"),
            "https://api.telegram.org/bot1:X/getUpdates"
        );
        channel.base_url = "http://127.0.0.1:9/".into();
        assert_eq!(
            method_url(&channel, "sendMessage"),
            "http://127.0.0.1:9/bot1:X/sendMessage"
        );
        assert_eq!(chat_id("-1001234"), json!(-1001234));
        assert_eq!(chat_id("@shopchannel"), json!("@shopchannel"));
        assert_eq!(cursor_name("tg"), "telegram:tg");
    }

    #[test]
    fn the_poll_request_asks_for_messages_only() {
        let body = serde_json::to_value(GetUpdates {
            offset: None,
            timeout: LONG_POLL_SECS,
            allowed_updates: ["message"],
        })
        .unwrap();
        assert_eq!(body, json!({"timeout": 25, "allowed_updates": ["message"]}));
        let body = serde_json::to_value(GetUpdates {
            offset: Some(8),
            timeout: 25,
            allowed_updates: ["message"],
        })
        .unwrap();
        assert_eq!(body["offset"], 8);
    }
}
