//! Integration tests, one binary so CI links once.
//!
//! - `corpus`: the labelled corpus against the built-in packs, with the
//!   accuracy targets of the README.
//! - `cli`: the `kefu` binary as a user runs it.
//! - `service`: `kefu serve` over HTTP with a real SQLite file and fake
//!   receivers; `support` holds the harness.
//! - `notify`: ticket notices: SLA timers under paused time, delivery to
//!   fake chat webhooks.

mod cli;
mod corpus;
mod marketplace;
mod notify;
mod service;
mod store;
mod support;
mod telegram;
mod whatsapp;
