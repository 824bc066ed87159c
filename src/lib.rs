//! kefu (客服): a multilingual auto-responder for cross-border e-commerce
//! customer service.
//!
//! The understanding engine is pure and synchronous; the command line wraps
//! it. Module map, inner to outer:
//!
//! - [`normalize`]: one normalization for keywords and messages (case, accents,
//!   full-width forms, punctuation), with per-script letter counts.
//! - [`lang`]: the supported languages and language detection.
//! - [`intent`]: intent packs (`intents/`), the compiled Aho-Corasick matcher,
//!   typo tolerance, and keyword-overlap reports.
//! - [`entity`]: order and tracking numbers, e-mail and phone (for redaction).
//! - [`reply`]: reply packs (`replies/`) and rendering with store facts.
//! - [`policy`]: answer or escalate, and why.
//! - [`engine`]: the above wired together: message in, decision and reply out.
//! - [`eval`]: scoring the packs against a labelled corpus.
//! - [`packs`]: where pack files come from; `file:line` errors.
//! - [`notify`]: notices to the team's chat about tickets (new escalations,
//!   SLA breaches, reply deadlines) and the SLA timers behind them.
//! - [`config`]: layered settings (built-in defaults, `kefu.toml`, `KEFU_…`).
//! - [`agents`]: the people who answer escalated conversations, their
//!   tokens, and the `CurrentAgent` extractor that authenticates them.
//! - [`cli`]: the `kefu` command line.

pub mod agents;
pub mod backoff;
pub mod channel;
pub mod cli;
pub mod config;
pub mod engine;
pub mod entity;
pub mod eval;
pub mod http;
pub mod intent;
pub mod lang;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod notify;
pub mod outbox;
pub mod packs;
pub mod pipeline;
pub mod policy;
pub mod reply;
pub mod server;
pub mod store;

pub use engine::{Engine, Inbound, Outcome};
pub use lang::Lang;
