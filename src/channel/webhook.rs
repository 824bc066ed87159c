//! kefu's own webhook channel.
//!
//! In: `POST /v1/channels/{channel}/messages` with
//! `{"message_id", "conversation_id", "text", "buyer": {"id", "name",
//! "locale", "country"}, "sent_at", "attachments": [...]}`; only the first
//! three are required. Out: the reply POSTed as JSON to the channel's
//! `callback_url`, signed like inbound requests, with an `Idempotency-Key`
//! header so the receiver can drop repeats.

use crate::channel::send_reply;
use serde::{Deserialize, Serialize};

use super::DeliveryError;
use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::config::ChannelConfig;
use crate::model::{Buyer, Delivery, InboundMessage};

/// A buyer's message, as POSTed to `/v1/channels/{channel}/messages`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookMessage {
    /// The channel's id for this message; a repeat with the same id is
    /// answered 200 and changes nothing.
    pub message_id: String,
    /// The channel's id for the conversation (one per buyer and store).
    pub conversation_id: String,
    /// What the buyer wrote. May be empty when there are attachments.
    pub text: String,
    #[serde(default)]
    pub buyer: Buyer,
    /// Unix seconds, or an RFC 3339 date-time string.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-11-22T10:00:00Z")]
    pub sent_at: Option<SentAt>,
    /// Photos, product or order cards, as the platform describes them.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub attachments: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SentAt {
    Seconds(i64),
    Text(String),
}

/// A bad request body, said so the sender can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

impl WebhookMessage {
    /// Parses and checks a raw body.
    pub fn parse(body: &[u8]) -> Result<WebhookMessage, BodyError> {
        if let Err(e) = std::str::from_utf8(body) {
            return Err(BodyError(format!(
                "the body is not valid UTF-8 (byte {}); send JSON encoded as UTF-8",
                e.valid_up_to()
            )));
        }
        let msg: WebhookMessage = serde_json::from_slice(body).map_err(|e| {
            BodyError(format!(
                "{e}; expected a JSON object with message_id, conversation_id and text"
            ))
        })?;
        for (field, value) in [
            ("message_id", &msg.message_id),
            ("conversation_id", &msg.conversation_id),
        ] {
            if value.trim().is_empty() {
                return Err(BodyError(format!("{field} is empty")));
            }
            if value.len() > 200 {
                return Err(BodyError(format!("{field} is longer than 200 bytes")));
            }
        }
        if msg.text.trim().is_empty() && msg.attachments.is_empty() {
            return Err(BodyError(
                "text is empty and there are no attachments: nothing to answer".into(),
            ));
        }
        Ok(msg)
    }

    pub fn into_inbound(self, channel: &str) -> Result<InboundMessage, BodyError> {
        let sent_at = match self.sent_at {
            None => None,
            Some(SentAt::Seconds(s)) => Some(s.saturating_mul(1000)),
            Some(SentAt::Text(t)) => Some(
                humantime::parse_rfc3339_weak(&t)
                    .map_err(|e| {
                        BodyError(format!("sent_at {t:?}: {e}; use Unix seconds or RFC 3339"))
                    })?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default(),
            ),
        };
        Ok(InboundMessage {
            channel: channel.to_string(),
            message_id: self.message_id,
            conversation_id: self.conversation_id,
            text: self.text,
            buyer: self.buyer,
            sent_at,
            attachments: self.attachments,
        })
    }
}

/// The callback body kefu POSTs to a webhook channel's `callback_url`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Callback {
    pub channel: String,
    pub conversation_id: String,
    pub buyer_id: Option<String>,
    pub text: String,
    pub idempotency_key: String,
}

pub async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelConfig,
    delivery: &Delivery,
) -> Result<(), DeliveryError> {
    let body = serde_json::to_vec(&Callback {
        channel: delivery.channel.clone(),
        conversation_id: delivery.conversation_external_id.clone(),
        buyer_id: delivery.buyer_id.clone(),
        text: delivery.text.clone(),
        idempotency_key: delivery.idempotency_key.clone(),
    })
    .expect("callback serializes");
    let mut request = http
        .post(&channel.callback_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", &delivery.idempotency_key);
    if !channel.secret.is_empty() {
        let now = crate::model::now_ms() / 1000;
        request = request.header(TIMESTAMP_HEADER, now.to_string()).header(
            SIGNATURE_HEADER,
            sign(channel.secret.as_bytes(), now, &body),
        );
    }
    send_reply(request.body(body), DeliveryError::from_status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_with_useful_errors() {
        let ok = WebhookMessage::parse(br#"{"message_id":"m1","conversation_id":"c1","text":"hi","buyer":{"locale":"pt-BR"},"sent_at":"2026-11-22T10:00:00Z"}"#).unwrap();
        let inbound = ok.into_inbound("shop").unwrap();
        assert_eq!(inbound.buyer.locale.as_deref(), Some("pt-BR"));
        assert_eq!(inbound.sent_at, Some(1_795_341_600_000));
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe", "not valid UTF-8"),
            (b"{", "EOF while parsing"),
            (
                br#"{"message_id":"m1","text":"hi"}"#,
                "missing field `conversation_id`",
            ),
            (
                br#"{"message_id":"m1","conversation_id":"c","text":"hi","txet":1}"#,
                "unknown field `txet`",
            ),
            (
                br#"{"message_id":" ","conversation_id":"c","text":"hi"}"#,
                "message_id is empty",
            ),
            (
                br#"{"message_id":"m","conversation_id":"c","text":" "}"#,
                "nothing to answer",
            ),
        ];
        for (body, expect) in cases {
            let err = WebhookMessage::parse(body).unwrap_err().0;
            assert!(err.contains(expect), "{err}");
        }
        let bad_time = WebhookMessage::parse(
            br#"{"message_id":"m","conversation_id":"c","text":"x","sent_at":"yesterday"}"#,
        )
        .unwrap();
        assert!(
            bad_time
                .into_inbound("shop")
                .unwrap_err()
                .0
                .contains("RFC 3339")
        );
    }
}
