//! The service's vocabulary: messages in and out, conversations, deliveries.

use serde::{Deserialize, Serialize};

/// The buyer as the channel describes them. Everything is optional: channels
/// differ in what they tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Buyer {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `pt-BR`, `zh-CN` …: the buyer's language as the platform knows it.
    #[serde(default)]
    pub locale: Option<String>,
    /// ISO country code, for time zones later.
    #[serde(default)]
    pub country: Option<String>,
}

/// A buyer's message as kefu accepts it, from any channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub channel: String,
    /// The channel's id for this message: a repeat is recognized by it.
    pub message_id: String,
    /// The channel's id for the conversation (one per buyer–store pair).
    pub conversation_id: String,
    pub text: String,
    pub buyer: Buyer,
    /// When the buyer sent it, Unix milliseconds, if the channel says.
    pub sent_at: Option<i64>,
    /// Attachments as the channel described them (photos, cards), kept as
    /// JSON for the transcript.
    pub attachments: Vec<serde_json::Value>,
}

/// What storing an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now; to be handled.
    New {
        conversation_id: i64,
        message_id: i64,
    },
    /// The same channel message id was stored before: nothing changed.
    Duplicate,
}

/// Who wrote a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Author {
    Buyer,
    Bot,
    Agent,
}

impl Author {
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Buyer => "buyer",
            Author::Bot => "bot",
            Author::Agent => "agent",
        }
    }
}

/// A conversation as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: i64,
    pub channel: String,
    pub external_id: String,
    pub buyer_id: Option<String>,
    pub buyer_name: Option<String>,
    pub buyer_locale: Option<String>,
    pub lang: Option<String>,
    /// `bot` or `human` (an agent holds it; kefu stays silent).
    pub state: String,
}

/// A stored buyer message waiting to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    pub id: i64,
    pub text: String,
    pub attachments: usize,
}

/// kefu's reply, to store with the transcript and queue for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct BotReply {
    pub text: String,
    pub lang: String,
    /// JSON: intents detected.
    pub intents: String,
    /// JSON: the decision and its reason.
    pub decision: String,
}

/// A reply due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub outbox_id: i64,
    pub conversation_id: i64,
    pub channel: String,
    /// The channel's conversation id (Telegram chat id, marketplace thread …).
    pub conversation_external_id: String,
    pub buyer_id: Option<String>,
    pub text: String,
    pub idempotency_key: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
