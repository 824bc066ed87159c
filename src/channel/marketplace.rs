//! Placeholder until the marketplace adapter lands in this change.

use super::DeliveryError;
use crate::config::ChannelConfig;
use crate::model::Delivery;

pub async fn deliver(
    _http: &reqwest::Client,
    _channel: &ChannelConfig,
    _delivery: &Delivery,
) -> Result<(), DeliveryError> {
    Err(DeliveryError::transient(
        "marketplace delivery is not built yet",
    ))
}

pub async fn poll(
    _name: String,
    _channel: ChannelConfig,
    _http: reqwest::Client,
    _intake: crate::pipeline::Intake,
    _store: crate::store::Store,
    _stopping: tokio::sync::watch::Receiver<bool>,
) {
}
