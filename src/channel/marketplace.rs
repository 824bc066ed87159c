//! The marketplace channel: a polled station-message API, for platforms
//! that offer no webhooks.
//!
//! The API kefu expects (`{base}` is the channel's `base_url`; every request
//! carries `Authorization: Bearer {token}` when `token` is set):
//!
//! - `GET {base}/messages?cursor=<cursor>` (no `cursor` on the very first
//!   poll) answers `{"messages": [{"message_id", "conversation_id", "text",
//!   "buyer": {"id", "name", "locale", "country"}, "sent_at"}],
//!   "next_cursor": "..."}`. `sent_at` is Unix seconds; `buyer`, its fields
//!   and `sent_at` may be left out; ids may be strings or numbers.
//! - `POST {base}/messages` with `{"conversation_id", "text",
//!   "idempotency_key"}` and an `Idempotency-Key` header sends a reply; the
//!   platform is expected to drop a repeated key.
//!
//! In: [`poll`] starts from the cursor persisted as `marketplace:{channel}`,
//! hands every message of a page to the intake (waiting when kefu's queue is
//! full) and only then persists `next_cursor`, so a crash repeats at most
//! one page and message-id dedupe absorbs the repeat. A page with messages
//! that moved the cursor is followed by the next poll at once; otherwise the
//! poller rests `poll_ms`. Failures (network, non-2xx, a body that is not a
//! page, the store) back off exponentially from `poll_ms` up to
//! [`MAX_BACKOFF`] with jitter, and never for less than a 429's
//! `Retry-After`; a success resets the backoff. One malformed message does
//! not hold up the channel: it is skipped with a warning naming its id.
//! Logs carry ids and counts, never message text.
//!
//! Out: [`deliver`] POSTs the reply. 2xx is delivered; 429 and 5xx (and the
//! other retryable statuses of [`DeliveryError::from_status`]) are retried,
//! with the platform's `Retry-After` when it gives one; any other 4xx is
//! permanent; network errors are transient.

use crate::channel::send_reply;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::watch;

use super::{DeliveryError, retry_after};
use crate::backoff;
use crate::config::ChannelConfig;
use crate::model::{Buyer, Delivery, InboundMessage};
use crate::pipeline::{Intake, IntakeError, Intook, WhenFull};
use crate::store::{Store, StoreError};

/// The longest pause after failed polls.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A reply as POSTed to `{base}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub conversation_id: String,
    pub text: String,
    pub idempotency_key: String,
}

pub async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelConfig,
    delivery: &Delivery,
) -> Result<(), DeliveryError> {
    let reply = Reply {
        conversation_id: delivery.conversation_external_id.clone(),
        text: delivery.text.clone(),
        idempotency_key: delivery.idempotency_key.clone(),
    };
    let request = http
        .post(messages_url(&channel.base_url))
        .header("idempotency-key", &delivery.idempotency_key)
        .json(&reply);
    send_reply(authorized(request, channel), DeliveryError::from_status).await
}

/// Polls the channel until `stopping` turns true (or its sender is gone).
pub async fn poll(
    name: String,
    channel: ChannelConfig,
    http: reqwest::Client,
    intake: Intake,
    store: Store,
    mut stopping: watch::Receiver<bool>,
) {
    let poller = Poller {
        cursor_key: format!("marketplace:{name}"),
        url: messages_url(&channel.base_url),
        // A zero pause would make the backoff zero too: a hot loop against
        // a failing platform.
        pause: Duration::from_millis(channel.poll_ms.max(1)),
        name,
        channel,
        http,
        intake,
        store,
    };
    tracing::info!(channel = %poller.name, "marketplace poller started");
    // `None` until the persisted cursor has been read.
    let mut cursor: Option<Option<String>> = None;
    let mut failures: u32 = 0;
    loop {
        if *stopping.borrow() {
            break;
        }
        let wait = match poller.round(&mut cursor, &mut stopping).await {
            Ok(Round::Again) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(Round::Rest) => {
                failures = 0;
                poller.pause
            }
            Ok(Round::Stopped) | Err(PollError::Closed) => break,
            Err(err) => {
                failures = failures.saturating_add(1);
                let wait = error_wait(failures, poller.pause, err.retry_after(), backoff::jitter());
                tracing::warn!(
                    channel = %poller.name,
                    failures,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %err,
                    "marketplace poll failed; backing off"
                );
                wait
            }
        };
        if !wait.is_zero() && rest(wait, &mut stopping).await {
            break;
        }
    }
    tracing::info!(channel = %poller.name, "marketplace poller stopped");
}

/// Everything one channel's poller needs.
struct Poller {
    name: String,
    channel: ChannelConfig,
    http: reqwest::Client,
    intake: Intake,
    store: Store,
    cursor_key: String,
    url: String,
    pause: Duration,
}

/// What the poller does after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// More may be waiting: poll again at once.
    Again,
    /// Caught up: rest `poll_ms`.
    Rest,
    Stopped,
}

#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        /// The platform's explanation, shortened.
        body: String,
    },
    #[error("the answer is not a message page: {0}")]
    Page(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("kefu is shutting down")]
    Closed,
}

impl PollError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            PollError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<IntakeError> for PollError {
    fn from(err: IntakeError) -> PollError {
        match err {
            IntakeError::Store(e) => PollError::Store(e),
            // `Busy` cannot happen while waiting for room; either way the
            // page is fetched again later.
            IntakeError::Busy | IntakeError::Closed => PollError::Closed,
        }
    }
}

/// What the intake made of one page.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    duplicates: usize,
    echoes: usize,
}

impl Poller {
    /// Reads the cursor if needed, fetches a page, stores its messages and
    /// then moves the cursor.
    async fn round(
        &self,
        cursor: &mut Option<Option<String>>,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<Round, PollError> {
        let current = match cursor {
            Some(current) => current,
            None => cursor.insert(self.store.cursor(&self.cursor_key).await?),
        };
        // Only the request is abandoned on stop; storing a page is not
        // interrupted midway, it is left between two messages.
        let page = tokio::select! {
            page = self.fetch(current.as_deref()) => page?,
            () = stopped(stopping) => return Ok(Round::Stopped),
        };
        for (index, reason) in &page.rejected {
            tracing::warn!(channel = %self.name, index, reason = %reason, "skipping a malformed marketplace message");
        }
        let Some(tally) = self.store_messages(&page.messages, stopping).await? else {
            return Ok(Round::Stopped);
        };
        let advanced = match page.next_cursor {
            Some(next) if current.as_deref() != Some(next.as_str()) => {
                self.store.set_cursor(&self.cursor_key, &next).await?;
                *current = Some(next);
                true
            }
            _ => false,
        };
        let fetched = page.messages.len() + page.rejected.len();
        if fetched > 0 {
            tracing::info!(
                channel = %self.name,
                fetched,
                accepted = tally.accepted,
                duplicates = tally.duplicates,
                own_echoes = tally.echoes,
                skipped = page.rejected.len(),
                cursor = current.as_deref().unwrap_or_default(),
                "marketplace page stored"
            );
        }
        Ok(pace(fetched, advanced))
    }

    async fn fetch(&self, cursor: Option<&str>) -> Result<Page, PollError> {
        let mut request = self.http.get(&self.url);
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let response = authorized(request, &self.channel)
            .send()
            .await
            .map_err(request_failed)?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            return Err(PollError::Status {
                status,
                retry_after,
                body: body.chars().take(200).collect(),
            });
        }
        let body = response.bytes().await.map_err(request_failed)?;
        parse_page(&self.name, &body).map_err(PollError::Page)
    }

    /// Hands each message to the intake, in page order. `None`: kefu is
    /// stopping; the rest of the page is fetched again after the restart.
    async fn store_messages(
        &self,
        messages: &[InboundMessage],
        stopping: &watch::Receiver<bool>,
    ) -> Result<Option<Tally>, PollError> {
        let mut tally = Tally::default();
        for msg in messages {
            if *stopping.borrow() {
                return Ok(None);
            }
            match self.intake.accept(msg.clone(), WhenFull::Wait).await? {
                Intook::Accepted => tally.accepted += 1,
                Intook::Duplicate => tally.duplicates += 1,
                Intook::OwnEcho => tally.echoes += 1,
            }
        }
        Ok(Some(tally))
    }
}

/// The error with its causes: "connection refused" or "timed out" sits in
/// the source chain, not in reqwest's own message.
fn request_failed(err: reqwest::Error) -> PollError {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    PollError::Request(text)
}

/// Adds the bearer token when the channel has one.
fn authorized(
    request: reqwest::RequestBuilder,
    channel: &ChannelConfig,
) -> reqwest::RequestBuilder {
    if channel.token.is_empty() {
        request
    } else {
        request.bearer_auth(&channel.token)
    }
}

fn messages_url(base: &str) -> String {
    format!("{}/messages", base.trim_end_matches('/'))
}

/// After a stored page: poll again at once only when it had messages and
/// moved the cursor; a page that does not move it would only come again.
fn pace(fetched: usize, advanced: bool) -> Round {
    if fetched > 0 && advanced {
        Round::Again
    } else {
        Round::Rest
    }
}

/// The pause after the `failures`-th failed poll in a row: capped
/// exponential backoff from the poll pause, never shorter than the
/// platform's `Retry-After`.
fn error_wait(
    failures: u32,
    pause: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let backoff = backoff::delay(failures, pause, MAX_BACKOFF, jitter);
    retry_after.map_or(backoff, |after| after.max(backoff))
}

/// Resolves once kefu is stopping. A dropped sender counts: nobody is left
/// to say "keep going".
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Sleeps `wait`; true when kefu began stopping meanwhile.
async fn rest(wait: Duration, stopping: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = stopped(stopping) => true,
    }
}

/// A fetched page: the messages to accept, the ones that could not be read
/// (page index, why), and where to continue.
#[derive(Debug, Default)]
struct Page {
    messages: Vec<InboundMessage>,
    rejected: Vec<(usize, String)>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    /// Kept raw so each message is read on its own.
    messages: Vec<serde_json::Value>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// One message as the platform sends it. Unknown fields are ignored: a
/// platform adding one must not stop the channel.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(deserialize_with = "id")]
    message_id: String,
    #[serde(deserialize_with = "id")]
    conversation_id: String,
    /// Null or absent for a photo or a card: stored as empty text for a
    /// person to look at.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    buyer: Option<RawBuyer>,
    #[serde(default)]
    sent_at: Option<f64>,
}

#[derive(Deserialize, Default)]
struct RawBuyer {
    #[serde(default, deserialize_with = "optional_id")]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

/// An id as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(serde_json::Number),
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        match id {
            Id::Text(text) => text,
            Id::Number(number) => number.to_string(),
        }
    }
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Id::deserialize(d).map(String::from)
}

fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Id>::deserialize(d).map(|id| id.map(String::from))
}

/// Reads a page body. A body that is not a page is an error (the poll is
/// retried); a message that cannot be read is reported in `rejected`. The
/// reasons never quote message text: `text` accepts any string, so serde
/// has no cause to quote it.
fn parse_page(channel: &str, body: &[u8]) -> Result<Page, String> {
    let raw: RawPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut page = Page {
        next_cursor: raw.next_cursor.filter(|c| !c.is_empty()),
        ..Page::default()
    };
    for (index, value) in raw.messages.into_iter().enumerate() {
        match read_message(channel, value) {
            Ok(msg) => page.messages.push(msg),
            Err(reason) => page.rejected.push((index, reason)),
        }
    }
    Ok(page)
}

fn read_message(channel: &str, value: serde_json::Value) -> Result<InboundMessage, String> {
    let raw: RawMessage = serde_json::from_value(value).map_err(|e| e.to_string())?;
    for (field, value) in [
        ("message_id", &raw.message_id),
        ("conversation_id", &raw.conversation_id),
    ] {
        if value.trim().is_empty() {
            return Err(format!("{field} is empty"));
        }
    }
    let buyer = raw.buyer.unwrap_or_default();
    Ok(InboundMessage {
        channel: channel.to_string(),
        message_id: raw.message_id,
        conversation_id: raw.conversation_id,
        text: raw.text.unwrap_or_default(),
        buyer: Buyer {
            id: buyer.id,
            name: buyer.name,
            locale: buyer.locale,
            country: buyer.country,
        },
        sent_at: raw
            .sent_at
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0) as i64),
        attachments: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_and_bad_messages_set_aside() {
        let page = parse_page(
            "mp",
            br#"{"messages":[
                {"message_id":"m1","conversation_id":"c1","text":"hi",
                 "buyer":{"id":"b1","name":"Ana","locale":"pt-BR","country":"BR","vip":true},
                 "sent_at":1795341600,"attachments_count":0},
                {"message_id":2,"conversation_id":77,"text":null,"buyer":{"id":9}},
                {"message_id":"m3","text":"no conversation"},
                {"message_id":" ","conversation_id":"c1","text":"blank id"},
                {"message_id":"m5","conversation_id":"c5","text":"x","sent_at":"yesterday"},
                {"message_id":"m6","conversation_id":"c6","text":"ok"}
            ],"next_cursor":"p2"}"#,
        )
        .unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("p2"));
        let ids: Vec<&str> = page
            .messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        assert_eq!(ids, ["m1", "2", "m6"]);
        let first = &page.messages[0];
        assert_eq!(first.channel, "mp");
        assert_eq!(first.conversation_id, "c1");
        assert_eq!(first.text, "hi");
        assert_eq!(first.buyer.locale.as_deref(), Some("pt-BR"));
        assert_eq!(first.buyer.country.as_deref(), Some("BR"));
        assert_eq!(first.sent_at, Some(1_795_341_600_000));
        let second = &page.messages[1];
        assert_eq!(second.conversation_id, "77");
        assert_eq!(second.buyer.id.as_deref(), Some("9"));
        assert_eq!(second.text, "");
        assert_eq!(second.sent_at, None);
        let rejected: Vec<usize> = page.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(rejected, [2, 3, 4]);
        assert!(
            page.rejected[0].1.contains("conversation_id"),
            "{:?}",
            page.rejected
        );
        assert!(page.rejected[1].1.contains("message_id is empty"));
    }

    #[test]
    fn bodies_that_are_not_pages_are_errors() {
        struct Case {
            name: &'static str,
            body: &'static [u8],
            expect: Result<(usize, Option<&'static str>), &'static str>,
        }
        let cases = [
            Case {
                name: "empty page",
                body: br#"{"messages":[],"next_cursor":"p1"}"#,
                expect: Ok((0, Some("p1"))),
            },
            Case {
                name: "no cursor",
                body: br#"{"messages":[]}"#,
                expect: Ok((0, None)),
            },
            Case {
                name: "null cursor",
                body: br#"{"messages":[],"next_cursor":null}"#,
                expect: Ok((0, None)),
            },
            Case {
                name: "empty cursor",
                body: br#"{"messages":[],"next_cursor":""}"#,
                expect: Ok((0, None)),
            },
            Case {
                name: "not JSON",
                body: b"<html>Bad gateway</html>",
                expect: Err("expected value"),
            },
            Case {
                name: "no messages",
                body: br#"{"next_cursor":"p1"}"#,
                expect: Err("missing field `messages`"),
            },
            Case {
                name: "messages not a list",
                body: br#"{"messages":{}}"#,
                expect: Err("invalid type"),
            },
        ];
        for case in cases {
            let got = parse_page("mp", case.body);
            match (got, case.expect) {
                (Ok(page), Ok((n, cursor))) => {
                    assert_eq!(page.messages.len(), n, "{}", case.name);
                    assert_eq!(page.next_cursor.as_deref(), cursor, "{}", case.name);
                }
                (Err(e), Err(expect)) => assert!(e.contains(expect), "{}: {e}", case.name),
                (got, _) => panic!("{}: unexpected {got:?}", case.name),
            }
        }
    }

    #[test]
    fn the_poller_goes_on_at_once_only_after_progress() {
        let table = [
            (0, false, Round::Rest),
            (0, true, Round::Rest),
            (3, false, Round::Rest),
            (3, true, Round::Again),
        ];
        for (fetched, advanced, expect) in table {
            assert_eq!(pace(fetched, advanced), expect, "{fetched} {advanced}");
        }
    }

    #[test]
    fn failed_polls_back_off_and_respect_retry_after() {
        let pause = Duration::from_millis(100);
        let ms = Duration::from_millis;
        let table = [
            (1, None, 1.0, ms(100)),
            (2, None, 1.0, ms(200)),
            (3, None, 0.5, ms(200)),
            (20, None, 1.0, MAX_BACKOFF),
            (1, Some(ms(5000)), 1.0, ms(5000)),
            (10, Some(ms(1000)), 1.0, ms(51_200)),
            (1, Some(ms(0)), 1.0, ms(100)),
        ];
        for (failures, after, jitter, expect) in table {
            assert_eq!(
                error_wait(failures, pause, after, jitter),
                expect,
                "{failures} {after:?} {jitter}"
            );
        }
    }

    #[test]
    fn the_endpoint_joins_the_base_url() {
        for base in ["https://mp.example/api", "https://mp.example/api/"] {
            assert_eq!(messages_url(base), "https://mp.example/api/messages");
        }
    }
}
