//! WhatsApp Business Cloud API: Meta's webhook in, Graph API messages out.
//!
//! In: `GET /v1/channels/{channel}/whatsapp` answers Meta's subscription
//! handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`);
//! `POST /v1/channels/{channel}/whatsapp` receives Meta's notifications,
//! signed with the app secret in `X-Hub-Signature-256`. Each buyer message
//! in them becomes an [`InboundMessage`] whose conversation is the buyer's
//! WhatsApp number; delivery receipts (`statuses`), reactions and other
//! fields are ignored. Meta retries anything but a 2xx, so kefu answers 200
//! only once every message of the notification is stored; a retry after a
//! partial failure stores the rest, the stored ones being duplicates.
//!
//! Out: `POST {base_url}/{phone_number_id}/messages` with a bearer token
//! and a `text` message. Throttling answers are retried, other rejections
//! are permanent.

use crate::channel::send_reply;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::DeliveryError;
use super::signature::{SignatureError, verify_hub};
use crate::config::{ChannelConfig, ChannelKind};
use crate::http::{ApiError, AppState};
use crate::model::{Buyer, Delivery, InboundMessage};
use crate::pipeline::{Intook, WhenFull};

/// The Graph API when the channel sets no `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com/v21.0";
/// Meta's signature over the raw body: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Longest message id or sender id kefu stores (Meta's are far shorter).
const MAX_ID_BYTES: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/channels/{channel}/whatsapp",
        get(handshake).post(receive),
    )
}

// ---------------------------------------------------------------- handshake

/// Why a subscription handshake was refused; safe to say to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("hub.mode must be `subscribe`")]
    Mode,
    #[error("hub.challenge is missing")]
    NoChallenge,
    #[error("hub.verify_token does not match this channel's verify_token")]
    Token,
}

/// Checks Meta's handshake query and returns the challenge to echo.
pub fn check_handshake(
    verify_token: &str,
    query: &HashMap<String, String>,
) -> Result<String, HandshakeError> {
    if query.get("hub.mode").map(String::as_str) != Some("subscribe") {
        return Err(HandshakeError::Mode);
    }
    let challenge = query
        .get("hub.challenge")
        .filter(|c| !c.is_empty())
        .ok_or(HandshakeError::NoChallenge)?;
    let offered = query.get("hub.verify_token").map_or("", String::as_str);
    // An unset token must not match an empty offer.
    let matches =
        !verify_token.is_empty() && bool::from(offered.as_bytes().ct_eq(verify_token.as_bytes()));
    if !matches {
        return Err(HandshakeError::Token);
    }
    Ok(challenge.clone())
}

/// `GET …/whatsapp`: 200 with the challenge as text, or 403.
async fn handshake(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<String, ApiError> {
    let forbidden = |message: String| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    let config = whatsapp_channel(&state, &channel).ok_or_else(|| {
        forbidden(format!(
            "no WhatsApp channel named `{channel}`; configure [channels.{channel}] with kind = \"whatsapp\""
        ))
    })?;
    check_handshake(&config.verify_token, &query).map_err(|e| {
        tracing::warn!(channel = %channel, error = %e, "WhatsApp handshake refused");
        forbidden(e.to_string())
    })
}

// ------------------------------------------------------------ notifications

/// A notification kefu cannot read, said so the sender can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all.
    #[error("{0}")]
    Syntax(String),
    /// JSON, but not the notification Meta documents.
    #[error("{0}")]
    Shape(String),
}

impl From<PayloadError> for ApiError {
    fn from(err: PayloadError) -> ApiError {
        match err {
            PayloadError::Syntax(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", m),
            PayloadError::Shape(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", m)
            }
        }
    }
}

/// The buyer messages of a notification, and how many were left out.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub messages: Vec<InboundMessage>,
    /// Messages kefu does not answer: reactions, system notices, messages
    /// from the business itself or to another of its numbers.
    pub ignored: usize,
}

#[derive(Debug, Deserialize)]
struct Notification {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    field: String,
    /// Its shape depends on `field`; read only for `messages`.
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Default, Deserialize)]
struct MessagesValue {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<Message>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    display_phone_number: String,
    #[serde(default)]
    phone_number_id: String,
}

#[derive(Debug, Deserialize)]
struct Contact {
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    wa_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    id: String,
    /// The buyer's number. Meta may withhold it from buyers who use a
    /// WhatsApp username; kefu cannot reply to those yet.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(rename = "type")]
    kind: String,
    /// The type-specific object (`text`, `image` …) and anything else.
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

/// Meta sends Unix seconds as a string; a number is taken too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Text(String),
    Seconds(i64),
}

/// Reads a notification for `channel` (named `name`). Nothing is stored
/// here; the whole notification is checked before any message is accepted.
pub fn parse(name: &str, channel: &ChannelConfig, body: &[u8]) -> Result<Parsed, PayloadError> {
    let notification: Notification = serde_json::from_slice(body).map_err(|e| {
        let hint = "expected Meta's JSON notification: {\"object\":\"whatsapp_business_account\",\"entry\":[…]}";
        if e.is_data() {
            PayloadError::Shape(format!("{e}; {hint}"))
        } else {
            PayloadError::Syntax(format!("the body is not JSON: {e}; {hint}"))
        }
    })?;
    if notification.object != "whatsapp_business_account" {
        return Err(PayloadError::Shape(format!(
            "object is {:?}, not \"whatsapp_business_account\": subscribe this URL to WhatsApp Business Account webhooks only",
            notification.object
        )));
    }
    let mut parsed = Parsed::default();
    for (i, entry) in notification.entry.into_iter().enumerate() {
        for (j, change) in entry.changes.into_iter().enumerate() {
            // Other fields (account updates, template reviews, message
            // echoes) are not buyer messages.
            if change.field != "messages" {
                continue;
            }
            let value: MessagesValue = serde_json::from_value(change.value)
                .map_err(|e| PayloadError::Shape(format!("entry[{i}].changes[{j}].value: {e}")))?;
            read_change(name, channel, value, &mut parsed)
                .map_err(|e| PayloadError::Shape(format!("entry[{i}].changes[{j}]: {e}")))?;
        }
    }
    Ok(parsed)
}

fn read_change(
    name: &str,
    channel: &ChannelConfig,
    value: MessagesValue,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let to_us = value.metadata.phone_number_id.is_empty()
        || value.metadata.phone_number_id == channel.phone_number_id.trim();
    if !to_us {
        // Meta sends every number of the app to one URL; kefu would reply
        // from the configured number, which the buyer did not write to.
        tracing::warn!(
            channel = %name,
            phone_number_id = %value.metadata.phone_number_id,
            "WhatsApp messages for another phone number id ignored; add a channel for it"
        );
        parsed.ignored += value.messages.len();
        return Ok(());
    }
    for (k, message) in value.messages.into_iter().enumerate() {
        let Some(from) = message.from.clone().filter(|f| !f.trim().is_empty()) else {
            tracing::warn!(channel = %name, message = %message.id, "WhatsApp message without a sender number ignored");
            parsed.ignored += 1;
            continue;
        };
        if is_own_number(
            &from,
            &value.metadata.display_phone_number,
            &channel.self_id,
        ) {
            parsed.ignored += 1;
            continue;
        }
        let sent_at = sent_at(message.timestamp.as_ref())
            .map_err(|e| format!("messages[{k}].timestamp: {e}"))?;
        check_id("id", &message.id).map_err(|e| format!("messages[{k}]: {e}"))?;
        check_id("from", &from).map_err(|e| format!("messages[{k}]: {e}"))?;
        let Some((text, attachments)) = content(&message.kind, &message.rest) else {
            parsed.ignored += 1;
            continue;
        };
        parsed.messages.push(InboundMessage {
            channel: name.to_string(),
            message_id: message.id,
            conversation_id: from.clone(),
            text,
            buyer: Buyer {
                name: contact_name(&value.contacts, &from),
                id: Some(from),
                locale: None,
                country: None,
            },
            sent_at,
            attachments,
        });
    }
    Ok(())
}

fn check_id(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!("{field} is longer than {MAX_ID_BYTES} bytes"));
    }
    Ok(())
}

/// Unix milliseconds from Meta's seconds.
fn sent_at(timestamp: Option<&Timestamp>) -> Result<Option<i64>, String> {
    let seconds = match timestamp {
        None => return Ok(None),
        Some(Timestamp::Seconds(s)) => *s,
        Some(Timestamp::Text(t)) => t
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{t:?} is not Unix seconds"))?,
    };
    Ok(Some(seconds.saturating_mul(1000)))
}

/// The business writing from its own number (its display number, or the
/// channel's `self_id`) is not a buyer.
fn is_own_number(from: &str, display_number: &str, self_id: &str) -> bool {
    let from_digits = digits(from);
    [display_number, self_id]
        .iter()
        .filter(|own| !own.trim().is_empty())
        .any(|own| *own == from || (!from_digits.is_empty() && digits(own) == from_digits))
}

/// Phone numbers come formatted (`+1 555-078-3881`) or bare (`15550783881`).
fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// The sender's profile name: the contact with their number, or the only
/// contact of the notification.
fn contact_name(contacts: &[Contact], from: &str) -> Option<String> {
    let contact = contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(from))
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        })?;
    contact
        .profile
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
}

/// Text and attachments of a message by its type; `None` for messages
/// kefu does not answer (reactions, system notices, unsupported types).
fn content(kind: &str, rest: &serde_json::Map<String, Value>) -> Option<(String, Vec<Value>)> {
    let object = rest.get(kind);
    let field = |path: &[&str]| -> Option<String> {
        let mut at = object?;
        for key in path {
            at = at.get(key)?;
        }
        at.as_str().map(str::to_string)
    };
    let attachment = || {
        let mut a = object
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        a.insert("type".into(), Value::String(kind.to_string()));
        vec![Value::Object(a)]
    };
    let (text, attachments) = match kind {
        "text" => (field(&["body"]).unwrap_or_default(), vec![]),
        "image" | "video" | "document" => (field(&["caption"]).unwrap_or_default(), attachment()),
        "audio" | "sticker" | "location" | "contacts" | "order" => (String::new(), attachment()),
        // A tap on a reply button or list row: its title is what the buyer said.
        "interactive" => {
            match field(&["button_reply", "title"]).or_else(|| field(&["list_reply", "title"])) {
                Some(title) => (title, vec![]),
                None => (String::new(), attachment()),
            }
        }
        "button" => (field(&["text"]).unwrap_or_default(), vec![]),
        _ => return None,
    };
    if text.trim().is_empty() && attachments.is_empty() {
        return None;
    }
    Some((text, attachments))
}

/// `POST …/whatsapp`: 200 once every buyer message is stored.
async fn receive(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let config = whatsapp_channel(&state, &channel).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_channel",
            format!(
                "no WhatsApp channel named `{channel}`; configure [channels.{channel}] with kind = \"whatsapp\""
            ),
        )
    })?;
    // Verify before parsing: nothing from an unauthenticated sender is read.
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) = verify(config, signature, &body) {
        state.metrics.inbound(&channel, "rejected");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            signature_problem(&e),
        ));
    }
    let parsed = parse(&channel, config, &body).inspect_err(|_| {
        state.metrics.inbound(&channel, "rejected");
    })?;
    for _ in 0..parsed.ignored {
        state.metrics.inbound(&channel, "ignored");
    }
    let (mut accepted, mut duplicate, mut ignored) = (0, 0, parsed.ignored);
    for msg in parsed.messages {
        match state.intake.accept(msg, WhenFull::Refuse).await? {
            Intook::Accepted => accepted += 1,
            Intook::Duplicate => duplicate += 1,
            Intook::OwnEcho => ignored += 1,
        }
    }
    state
        .metrics
        .accept_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(json!({
        "status": "ok",
        "accepted": accepted,
        "duplicate": duplicate,
        "ignored": ignored,
    })))
}

fn verify(
    config: &ChannelConfig,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    // Configuration requires a secret; an empty key would be guessable.
    if config.secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    verify_hub(config.secret.as_bytes(), signature, body)
}

/// [`SignatureError`] speaks of kefu's own headers; say it in Meta's terms.
fn signature_problem(err: &SignatureError) -> &'static str {
    match err {
        SignatureError::Missing(_) => {
            "missing X-Hub-Signature-256 header: Meta signs every notification with the app secret"
        }
        SignatureError::Mismatch => {
            "X-Hub-Signature-256 does not match the body: the channel's `secret` must be the Meta app secret"
        }
        _ => "X-Hub-Signature-256 must look like sha256=<64 hex digits>",
    }
}

fn whatsapp_channel<'a>(state: &'a AppState, name: &str) -> Option<&'a ChannelConfig> {
    state
        .channels
        .get(name)
        .filter(|c| c.kind == ChannelKind::Whatsapp)
}

// ------------------------------------------------------------------ delivery

/// The Graph API's text message.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutgoingText {
    pub messaging_product: String,
    pub recipient_type: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: TextBody,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TextBody {
    pub preview_url: bool,
    pub body: String,
}

impl OutgoingText {
    pub fn new(to: &str, text: &str) -> OutgoingText {
        OutgoingText {
            messaging_product: "whatsapp".into(),
            recipient_type: "individual".into(),
            to: to.into(),
            kind: "text".into(),
            text: TextBody {
                preview_url: false,
                body: text.into(),
            },
        }
    }
}

/// `{base}/{phone_number_id}/messages`.
pub fn messages_url(channel: &ChannelConfig) -> String {
    let base = match channel.base_url.trim() {
        "" => DEFAULT_BASE_URL,
        base => base,
    };
    format!(
        "{}/{}/messages",
        base.trim_end_matches('/'),
        channel.phone_number_id.trim()
    )
}

/// The buyer's number, or the conversation (which is the number too).
fn recipient(delivery: &Delivery) -> &str {
    delivery
        .buyer_id
        .as_deref()
        .filter(|id| !id.trim().is_empty())
        .unwrap_or(&delivery.conversation_external_id)
}

pub async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelConfig,
    delivery: &Delivery,
) -> Result<(), DeliveryError> {
    // The token goes only into the header (reqwest marks bearer headers
    // sensitive); errors and logs carry the URL and Meta's answer, never it.
    let request = http
        .post(messages_url(channel))
        .bearer_auth(&channel.token)
        .json(&OutgoingText::new(recipient(delivery), &delivery.text));
    send_reply(request, classify_failure).await
}

/// Graph error codes for throttling. Meta answers them with HTTP 400, yet
/// waiting helps: 4 (app calls), 80007 (account rate limit), 130429
/// (throughput), 131056 (too many messages to one buyer).
const THROTTLING_CODES: [i64; 4] = [4, 80007, 130429, 131056];

/// A failed Graph API answer: 429 and 5xx are retried (honouring
/// Retry-After), throttling codes too; other rejections are permanent.
pub fn classify_failure(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> DeliveryError {
    let mut err = DeliveryError::from_status(status, retry_after, body);
    if status.is_client_error()
        && graph_error_code(body).is_some_and(|c| THROTTLING_CODES.contains(&c))
    {
        err.permanent = false;
    }
    err
}

/// `error.code` of a Graph API error body.
fn graph_error_code(body: &str) -> Option<i64> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get("error")?.get("code")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(self_id: &str) -> ChannelConfig {
        let toml = format!(
            "kind = \"whatsapp\"\ntoken = \"EAAtest\"\nsecret = \"appsecret\"\nverify_token = \"verify-me\"\nphone_number_id = \"1098765\"\nself_id = \"{self_id}\"\n"
        );
        toml::from_str(&toml).unwrap()
    }

    /// A notification with one change holding these messages.
    fn notification(phone_number_id: &str, messages: Value) -> Vec<u8> {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "102290129340398",
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": phone_number_id,
                        },
                        "contacts": [{ "profile": { "name": "João" }, "wa_id": "5511987654321" }],
                        "messages": messages,
                    },
                }],
            }],
        })
        .to_string()
        .into_bytes()
    }

    fn message(kind: &str, object: Value) -> Value {
        json!({
            "from": "5511987654321",
            "id": "wamid.1",
            "timestamp": "1749416383",
            "type": kind,
            kind: object,
        })
    }

    #[test]
    fn message_types_become_text_and_attachments() {
        struct Case {
            name: &'static str,
            kind: &'static str,
            object: Value,
            /// Text and number of attachments; `None`: ignored.
            expect: Option<(&'static str, usize)>,
        }
        let cases = [
            Case {
                name: "text",
                kind: "text",
                object: json!({ "body": "Quanto custa o frete?" }),
                expect: Some(("Quanto custa o frete?", 0)),
            },
            Case {
                name: "image with caption",
                kind: "image",
                object: json!({ "caption": "chegou assim", "mime_type": "image/jpeg", "id": "m1" }),
                expect: Some(("chegou assim", 1)),
            },
            Case {
                name: "document without caption",
                kind: "document",
                object: json!({ "filename": "nota.pdf", "id": "m2" }),
                expect: Some(("", 1)),
            },
            Case {
                name: "voice note",
                kind: "audio",
                object: json!({ "id": "m3", "voice": true }),
                expect: Some(("", 1)),
            },
            Case {
                name: "location",
                kind: "location",
                object: json!({ "latitude": -23.5, "longitude": -46.6 }),
                expect: Some(("", 1)),
            },
            Case {
                name: "reply button",
                kind: "interactive",
                object: json!({ "type": "button_reply", "button_reply": { "id": "b1", "title": "Rastrear pedido" } }),
                expect: Some(("Rastrear pedido", 0)),
            },
            Case {
                name: "list row",
                kind: "interactive",
                object: json!({ "type": "list_reply", "list_reply": { "id": "r1", "title": "Trocas" } }),
                expect: Some(("Trocas", 0)),
            },
            Case {
                name: "template quick reply",
                kind: "button",
                object: json!({ "payload": "p", "text": "Sim" }),
                expect: Some(("Sim", 0)),
            },
            Case {
                name: "reaction",
                kind: "reaction",
                object: json!({ "message_id": "wamid.0", "emoji": "👍" }),
                expect: None,
            },
            Case {
                name: "unsupported",
                kind: "unsupported",
                object: json!({}),
                expect: None,
            },
            Case {
                name: "empty text",
                kind: "text",
                object: json!({ "body": "  " }),
                expect: None,
            },
        ];
        for case in cases {
            let body = notification("1098765", json!([message(case.kind, case.object)]));
            let parsed = parse("wa", &channel(""), &body).unwrap();
            match case.expect {
                None => {
                    assert!(parsed.messages.is_empty(), "{}", case.name);
                    assert_eq!(parsed.ignored, 1, "{}", case.name);
                }
                Some((text, attachments)) => {
                    assert_eq!(parsed.ignored, 0, "{}", case.name);
                    let [msg] = parsed.messages.as_slice() else {
                        panic!("{}: {:?}", case.name, parsed.messages)
                    };
                    assert_eq!(msg.text, text, "{}", case.name);
                    assert_eq!(msg.attachments.len(), attachments, "{}", case.name);
                    if attachments > 0 {
                        assert_eq!(msg.attachments[0]["type"], case.kind, "{}", case.name);
                    }
                }
            }
        }
    }

    #[test]
    fn a_text_message_maps_to_an_inbound_message() {
        let body = notification(
            "1098765",
            json!([message("text", json!({ "body": "Olá" }))]),
        );
        let parsed = parse("wa", &channel(""), &body).unwrap();
        assert_eq!(
            parsed.messages,
            vec![InboundMessage {
                channel: "wa".into(),
                message_id: "wamid.1".into(),
                conversation_id: "5511987654321".into(),
                text: "Olá".into(),
                buyer: Buyer {
                    id: Some("5511987654321".into()),
                    name: Some("João".into()),
                    locale: None,
                    country: None,
                },
                sent_at: Some(1_749_416_383_000),
                attachments: vec![],
            }]
        );
    }

    #[test]
    fn senders_that_are_not_buyers_are_ignored() {
        let text = json!({ "body": "oi" });
        let from = |from: Value| {
            let mut m = message("text", text.clone());
            m["from"] = from;
            m
        };
        struct Case {
            name: &'static str,
            phone_number_id: &'static str,
            self_id: &'static str,
            message: Value,
            ignored: bool,
        }
        let cases = [
            Case {
                name: "a buyer",
                phone_number_id: "1098765",
                self_id: "",
                message: message("text", text.clone()),
                ignored: false,
            },
            Case {
                name: "the business's display number",
                phone_number_id: "1098765",
                self_id: "",
                message: from(json!("15550783881")),
                ignored: true,
            },
            Case {
                name: "self_id, formatted",
                phone_number_id: "1098765",
                self_id: "+55 11 98765-4321",
                message: message("text", text.clone()),
                ignored: true,
            },
            Case {
                name: "to another number of the business",
                phone_number_id: "2222222",
                self_id: "",
                message: message("text", text.clone()),
                ignored: true,
            },
            Case {
                name: "number withheld",
                phone_number_id: "1098765",
                self_id: "",
                message: {
                    let mut m = message("text", text.clone());
                    m.as_object_mut().unwrap().remove("from");
                    m
                },
                ignored: true,
            },
        ];
        for case in cases {
            let body = notification(case.phone_number_id, json!([case.message]));
            let parsed = parse("wa", &channel(case.self_id), &body).unwrap();
            assert_eq!(
                (parsed.messages.is_empty(), parsed.ignored),
                (case.ignored, usize::from(case.ignored)),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn statuses_and_other_fields_are_not_messages() {
        let statuses = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": [
                { "field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": "1098765" },
                    "statuses": [{ "id": "wamid.9", "status": "delivered", "timestamp": "1749416383", "recipient_id": "5511987654321" }],
                } },
                { "field": "account_update", "value": { "event": "VERIFIED_ACCOUNT" } },
            ] }],
        });
        let parsed = parse("wa", &channel(""), statuses.to_string().as_bytes()).unwrap();
        assert_eq!(parsed, Parsed::default());
    }

    #[test]
    fn bad_notifications_are_explained() {
        let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
            ("not json", b"{oops".to_vec(), true, "not JSON"),
            ("not utf-8", b"\xff\xfe".to_vec(), true, "not JSON"),
            (
                "no object",
                br#"{"entry":[]}"#.to_vec(),
                false,
                "missing field `object`",
            ),
            (
                "another product",
                br#"{"object":"page","entry":[]}"#.to_vec(),
                false,
                "whatsapp_business_account",
            ),
            (
                "message without id",
                notification(
                    "1098765",
                    json!([{ "from": "55", "type": "text", "text": { "body": "x" } }]),
                ),
                false,
                "missing field `id`",
            ),
            (
                "messages not a list",
                notification("1098765", json!({ "id": "x" })),
                false,
                "entry[0].changes[0].value",
            ),
            (
                "timestamp",
                notification(
                    "1098765",
                    json!([{ "from": "55", "id": "w", "timestamp": "yesterday", "type": "text", "text": { "body": "x" } }]),
                ),
                false,
                "messages[0].timestamp",
            ),
        ];
        for (name, body, syntax, expect) in cases {
            let err = parse("wa", &channel(""), &body).unwrap_err();
            assert_eq!(
                matches!(err, PayloadError::Syntax(_)),
                syntax,
                "{name}: {err}"
            );
            assert!(err.to_string().contains(expect), "{name}: {err}");
        }
    }

    #[test]
    fn handshake_table() {
        let query = |mode: &str, token: &str, challenge: &str| -> HashMap<String, String> {
            [
                ("hub.mode", mode),
                ("hub.verify_token", token),
                ("hub.challenge", challenge),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let cases = [
            (
                "ok",
                "verify-me",
                query("subscribe", "verify-me", "1158201444"),
                Ok("1158201444".to_string()),
            ),
            (
                "wrong token",
                "verify-me",
                query("subscribe", "verify-you", "1"),
                Err(HandshakeError::Token),
            ),
            (
                "prefix of the token",
                "verify-me",
                query("subscribe", "verify", "1"),
                Err(HandshakeError::Token),
            ),
            (
                "no token",
                "verify-me",
                query("subscribe", "", "1"),
                Err(HandshakeError::Token),
            ),
            (
                "unset token",
                "",
                query("subscribe", "", "1"),
                Err(HandshakeError::Token),
            ),
            (
                "wrong mode",
                "verify-me",
                query("unsubscribe", "verify-me", "1"),
                Err(HandshakeError::Mode),
            ),
            (
                "no challenge",
                "verify-me",
                query("subscribe", "verify-me", ""),
                Err(HandshakeError::NoChallenge),
            ),
        ];
        for (name, token, query, expect) in cases {
            assert_eq!(check_handshake(token, &query), expect, "{name}");
        }
    }

    #[test]
    fn graph_failures_are_classified() {
        use reqwest::StatusCode as S;
        let graph = |code: Value| {
            json!({ "error": { "message": "(#x)", "type": "OAuthException", "code": code } })
                .to_string()
        };
        let cases = [
            (
                "throughput limit",
                S::BAD_REQUEST,
                graph(json!(130429)),
                false,
            ),
            (
                "pair rate limit",
                S::BAD_REQUEST,
                graph(json!(131056)),
                false,
            ),
            (
                "app call limit as text",
                S::BAD_REQUEST,
                graph(json!("4")),
                false,
            ),
            (
                "outside the 24 h window",
                S::BAD_REQUEST,
                graph(json!(131047)),
                true,
            ),
            ("bad token", S::UNAUTHORIZED, graph(json!(190)), true),
            ("not JSON", S::BAD_REQUEST, "<html>".to_string(), true),
            (
                "too many requests",
                S::TOO_MANY_REQUESTS,
                String::new(),
                false,
            ),
            (
                "server error",
                S::INTERNAL_SERVER_ERROR,
                graph(json!(131000)),
                false,
            ),
        ];
        for (name, status, body, permanent) in cases {
            assert_eq!(
                classify_failure(status, None, &body).permanent,
                permanent,
                "{name}"
            );
        }
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            classify_failure(S::TOO_MANY_REQUESTS, after, "").retry_after,
            after
        );
    }

    #[test]
    fn replies_go_to_the_buyer_from_the_channel_number() {
        let mut ch = channel("");
        assert_eq!(
            messages_url(&ch),
            "https://graph.facebook.com/v21.0/1098765/messages"
        );
        ch.base_url = "http://127.0.0.1:9/v21.0/".into();
        assert_eq!(
            messages_url(&ch),
            "http://127.0.0.1:9/v21.0/1098765/messages"
        );
        let mut delivery = Delivery {
            outbox_id: 1,
            conversation_id: 1,
            channel: "wa".into(),
            conversation_external_id: "5511987654321".into(),
            buyer_id: Some("5511000000000".into()),
            text: "Olá".into(),
            idempotency_key: "k".into(),
            attempts: 0,
        };
        assert_eq!(recipient(&delivery), "5511000000000");
        delivery.buyer_id = None;
        assert_eq!(recipient(&delivery), "5511987654321");
        assert_eq!(
            serde_json::to_value(OutgoingText::new("5511987654321", "Olá")).unwrap(),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "5511987654321",
                "type": "text",
                "text": { "preview_url": false, "body": "Olá" },
            })
        );
    }
}
