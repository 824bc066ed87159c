//! Channels: where buyer messages come from and where replies go.
//!
//! - [`webhook`]: kefu's own JSON webhook in, signed callbacks out.
//! - [`telegram`]: Bot API long polling in, `sendMessage` out.
//! - [`whatsapp`]: Meta's webhook in, Graph API messages out.
//! - [`marketplace`]: a polled station-message API in and out.
//! - [`signature`]: HMAC signing and checking.
//!
//! [`Channels::deliver`] sends one stored reply; what happens on failure
//! (retry, dead letter) is the outbox's business.

pub mod marketplace;
pub mod signature;
pub mod telegram;
pub mod webhook;
pub mod whatsapp;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{ChannelConfig, ChannelKind, Config};
use crate::entity::redact;
use crate::model::Delivery;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    /// The receiver said when to try again (HTTP 429 Retry-After, Telegram
    /// `retry_after`).
    pub retry_after: Option<Duration>,
    /// Retrying cannot help (the receiver rejected the request itself).
    pub permanent: bool,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            message: message.into(),
            retry_after: None,
            permanent: false,
        }
    }

    /// Classifies an HTTP answer that was not a success.
    pub fn from_status(
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> DeliveryError {
        let retryable =
            status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 425 | 429);
        let body: String = body.chars().take(200).collect();
        DeliveryError {
            message: format!("HTTP {status}: {body}"),
            retry_after,
            permanent: !retryable,
        }
    }

    pub fn from_reqwest(err: reqwest::Error) -> DeliveryError {
        // Connection refused, timeouts, resets: the receiver may come back.
        DeliveryError::transient(format!("request failed: {err}"))
    }
}

/// `Retry-After` in seconds, if present.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends a delivery request; a non-2xx answer becomes a [`DeliveryError`]
/// through `classify` (usually [`DeliveryError::from_status`]).
pub async fn send_reply(
    request: reqwest::RequestBuilder,
    classify: fn(reqwest::StatusCode, Option<Duration>, &str) -> DeliveryError,
) -> Result<(), DeliveryError> {
    let response = request.send().await.map_err(DeliveryError::from_reqwest)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let after = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Err(classify(status, after, &body))
}

/// The configured channels and one HTTP client for all deliveries.
pub struct Channels {
    http: reqwest::Client,
    by_name: BTreeMap<String, ChannelConfig>,
}

impl Channels {
    pub fn new(config: &Config) -> Channels {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.outbox.request_timeout_ms))
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client with rustls");
        Channels {
            http,
            by_name: config
                .channels
                .iter()
                .filter(|(_, c)| c.enabled)
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ChannelConfig> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ChannelConfig)> {
        self.by_name.iter()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends one reply through its conversation's channel.
    pub async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let Some(channel) = self.by_name.get(&delivery.channel) else {
            return Err(DeliveryError {
                message: format!(
                    "channel `{}` is no longer configured; add it back to kefu.toml to deliver its replies",
                    delivery.channel
                ),
                retry_after: None,
                permanent: true,
            });
        };
        match channel.kind {
            ChannelKind::Webhook if channel.callback_url.is_empty() => {
                // No receiver configured: the log is the delivery (demo and
                // dry runs). The reply is kefu's text, redacted all the same.
                tracing::info!(
                    channel = %delivery.channel,
                    conversation = %delivery.conversation_external_id,
                    reply = %redact(&delivery.text),
                    "reply (no callback_url configured for this channel)"
                );
                Ok(())
            }
            ChannelKind::Webhook => webhook::deliver(&self.http, channel, delivery).await,
            ChannelKind::Telegram => telegram::deliver(&self.http, channel, delivery).await,
            ChannelKind::Whatsapp => whatsapp::deliver(&self.http, channel, delivery).await,
            ChannelKind::Marketplace => marketplace::deliver(&self.http, channel, delivery).await,
        }
    }
}
