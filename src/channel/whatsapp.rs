//! Placeholder until the whatsapp adapter lands in this change.

use super::DeliveryError;
use crate::config::ChannelConfig;
use crate::model::Delivery;

pub async fn deliver(
    _http: &reqwest::Client,
    _channel: &ChannelConfig,
    _delivery: &Delivery,
) -> Result<(), DeliveryError> {
    Err(DeliveryError::transient(
        "whatsapp delivery is not built yet",
    ))
}

pub fn routes() -> axum::Router<crate::http::AppState> {
    axum::Router::new()
}
