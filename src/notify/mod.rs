//! Notices to the team about tickets: new escalations, SLA breaches and
//! reply deadlines, POSTed to chat webhooks through a durable outbox.
//!
//! - [`format`]: what a notice says and each chat tool's body (pure).
//! - [`sla`]: which notice a ticket's timers call for, and when (pure).
//! - [`send`]: one POST with the target's signing; reading the answer.

pub mod format;
pub mod send;
pub mod sla;

pub use format::Event;
