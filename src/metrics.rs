//! Numbers operators can trust: Prometheus counters and histograms served
//! at `/metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntentLabel {
    pub intent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabel {
    pub channel: String,
    /// delivered, retry or dead
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboundLabel {
    pub channel: String,
    /// accepted, duplicate, ignored, rejected, busy
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabel {
    /// The `[notify.targets.<name>]`.
    pub target: String,
    /// delivered, retry or dead
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub messages_in: Family<InboundLabel, Counter>,
    pub messages_out: Family<ChannelLabel, Counter>,
    pub intents: Family<IntentLabel, Counter>,
    pub escalations: Family<ReasonLabel, Counter>,
    pub delivery_attempts: Family<DeliveryLabel, Counter>,
    pub notifications: Family<NotifyLabel, Counter>,
    /// From receiving a request to answering 202 (the durable write).
    pub accept_seconds: Histogram,
    /// From a buyer message being stored to its reply being stored.
    pub reply_seconds: Histogram,
    /// One delivery attempt.
    pub delivery_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kefu");
        let messages_in = Family::<InboundLabel, Counter>::default();
        let messages_out = Family::<ChannelLabel, Counter>::default();
        let intents = Family::<IntentLabel, Counter>::default();
        let escalations = Family::<ReasonLabel, Counter>::default();
        let delivery_attempts = Family::<DeliveryLabel, Counter>::default();
        let notifications = Family::<NotifyLabel, Counter>::default();
        // 0.1 ms … ~100 s
        let buckets = || Histogram::new(exponential_buckets(0.0001, 2.5, 16));
        let accept_seconds = buckets();
        let reply_seconds = buckets();
        let delivery_seconds = buckets();
        registry.register(
            "messages_in",
            "Buyer messages received, by outcome",
            messages_in.clone(),
        );
        registry.register("messages_out", "Replies delivered", messages_out.clone());
        registry.register(
            "intents",
            "Detected intents (best intent per answered batch)",
            intents.clone(),
        );
        registry.register(
            "escalations",
            "Conversations handed to people, by reason",
            escalations.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Reply delivery attempts, by outcome",
            delivery_attempts.clone(),
        );
        registry.register(
            "notifications",
            "Ticket notice delivery attempts, by target and outcome",
            notifications.clone(),
        );
        registry.register(
            "accept_seconds",
            "Time to store an inbound message and answer",
            accept_seconds.clone(),
        );
        registry.register(
            "reply_seconds",
            "Time from storing a message to storing its reply",
            reply_seconds.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Duration of one delivery attempt",
            delivery_seconds.clone(),
        );
        Metrics {
            registry,
            messages_in,
            messages_out,
            intents,
            escalations,
            delivery_attempts,
            notifications,
            accept_seconds,
            reply_seconds,
            delivery_seconds,
        }
    }

    pub fn inbound(&self, channel: &str, outcome: &str) {
        self.messages_in
            .get_or_create(&InboundLabel {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn delivery(&self, channel: &str, outcome: &str) {
        self.delivery_attempts
            .get_or_create(&DeliveryLabel {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn notification(&self, target: &str, outcome: &str) {
        self.notifications
            .get_or_create(&NotifyLabel {
                target: target.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn escalation(&self, reason: &str) {
        self.escalations
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
