//! kefu's HTTP edge: inbound webhooks, the agent API ([`agent`]), the agent
//! console's page ([`console`]), health, readiness, metrics and the OpenAPI
//! description.
//!
//! Errors become HTTP here and nowhere else: 4xx bodies say what is wrong
//! and what to do; 5xx bodies say nothing internal (the log has the cause).

pub mod agent;

use agent::BearerAuth;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::agents::Agents;
use crate::channel::Channels;
use crate::channel::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::channel::webhook::WebhookMessage;
use crate::config::ChannelKind;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::model::now_ms;
use crate::pipeline::{Intake, IntakeError, Intook, WhenFull};
use crate::store::Store;

pub mod console;

#[derive(Clone)]
pub struct AppState {
    pub intake: Intake,
    pub store: Store,
    pub channels: Arc<Channels>,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub agents: Arc<Agents>,
    /// Wakes the outbox when an agent's reply is stored.
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

impl FromRef<AppState> for Arc<Agents> {
    fn from_ref(state: &AppState) -> Arc<Agents> {
        state.agents.clone()
    }
}

/// An error answer: status, a stable code and a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A failure inside kefu: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "kefu could not complete the request; it has been logged. Retry later.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            // RFC 6750: a 401 for a missing or bad agent token names the scheme.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<IntakeError> for ApiError {
    fn from(err: IntakeError) -> ApiError {
        match err {
            IntakeError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "kefu's queue is full; retry in a second (the message was not stored)",
            ),
            IntakeError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "kefu is shutting down; retry shortly (the message was not stored)",
            ),
            IntakeError::Store(e) => ApiError::internal(&e),
        }
    }
}

pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/v1/channels/{channel}/messages", post(post_message))
        .merge(crate::channel::whatsapp::routes())
        .merge(agent::routes())
        .merge(console::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; buyer messages go to POST /v1/channels/{channel}/messages",
    )
}

/// The OpenAPI description served at `/openapi.json`, generated from the
/// handlers and types below.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "kefu",
        description = "Multilingual auto-responder for cross-border e-commerce customer service"
    ),
    paths(
        post_message,
        healthz,
        readyz,
        agent::me,
        agent::list_tickets,
        agent::ticket_detail,
        agent::claim,
        agent::assign,
        agent::reply,
        agent::phrases,
        agent::add_note,
        agent::resolve,
        agent::handback,
        agent::search_conversations,
        agent::conversation,
        agent::export
    ),
    modifiers(&BearerAuth),
    components(schemas(
        WebhookMessage,
        crate::model::Buyer,
        crate::channel::webhook::Callback,
        ErrorBody,
        ErrorDetail,
        Receipt
    ))
)]
pub struct ApiDoc;

/// Every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: unknown_channel, bad_signature, invalid_message, busy …
    pub code: String,
    /// For people: what is wrong and what to do.
    pub message: String,
}

/// The answer to an accepted, repeated or ignored message.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// accepted, duplicate or ignored_own_message
    pub status: String,
    pub message_id: String,
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        <ApiDoc as utoipa::OpenApi>::openapi()
            .to_json()
            .unwrap_or_default(),
    )
}

/// Receive a buyer's message.
///
/// Stored durably before the answer. With a channel secret, the request must
/// carry `X-Kefu-Timestamp` (Unix seconds) and `X-Kefu-Signature:
/// sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`; requests more than
/// five minutes old are refused.
#[utoipa::path(
    post,
    path = "/v1/channels/{channel}/messages",
    params(("channel" = String, Path, description = "A channel of kind webhook from the configuration")),
    request_body = WebhookMessage,
    responses(
        (status = 202, description = "Stored; the reply follows through the channel", body = Receipt),
        (status = 200, description = "A repeated message id (nothing changed), or the store's own echo (ignored)", body = Receipt),
        (status = 401, description = "Missing, wrong or stale signature", body = ErrorBody),
        (status = 404, description = "No such webhook channel", body = ErrorBody),
        (status = 413, description = "Body larger than server.body_limit_bytes"),
        (status = 422, description = "Not valid UTF-8 JSON of the documented shape", body = ErrorBody),
        (status = 503, description = "Queue full or shutting down; nothing stored, retry after Retry-After", body = ErrorBody),
    )
)]
async fn post_message(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let started = Instant::now();
    let config = state
        .channels
        .get(&channel)
        .filter(|c| c.kind == ChannelKind::Webhook)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_channel",
                format!("no webhook channel named `{channel}`; configure [channels.{channel}] with kind = \"webhook\""),
            )
        })?;
    // Verify before parsing: nothing from an unauthenticated sender is read.
    if !config.secret.is_empty() {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Err(e) = signature::verify(
            config.secret.as_bytes(),
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            &body,
            now_ms() / 1000,
        ) {
            state.metrics.inbound(&channel, "rejected");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                e.to_string(),
            ));
        }
    }
    let parsed = WebhookMessage::parse(&body).and_then(|m| m.into_inbound(&channel));
    let msg = match parsed {
        Ok(msg) => msg,
        Err(e) => {
            state.metrics.inbound(&channel, "rejected");
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_message",
                e.0,
            ));
        }
    };
    let message_id = msg.message_id.clone();
    let result = state.intake.accept(msg, WhenFull::Refuse).await?;
    state
        .metrics
        .accept_seconds
        .observe(started.elapsed().as_secs_f64());
    let (status, word) = match result {
        Intook::Accepted => (StatusCode::ACCEPTED, "accepted"),
        Intook::Duplicate => (StatusCode::OK, "duplicate"),
        Intook::OwnEcho => (StatusCode::OK, "ignored_own_message"),
    };
    Ok((
        status,
        Json(json!({ "status": word, "message_id": message_id })),
    ))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "database unreachable", body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok("ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unreachable",
                "the database is not reachable",
            ))
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
