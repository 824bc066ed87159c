//! Integration tests, one binary so CI links once.
//!
//! - `corpus`: the labelled corpus against the built-in packs, with the
//!   accuracy targets of the README.
//! - `cli`: the `kefu` binary as a user runs it.
//! - `service`: `kefu serve` over HTTP with a real SQLite file and fake
//!   receivers; `support` holds the harness.
//! - `agents`: `kefu agent …` with the real binary, tokens, the agents table.
//! - `console`: the agent console in headless Chromium against a real kefu.
//! - `notify`: ticket notices: SLA timers under paused time, delivery to
//!   fake chat webhooks.

mod agents;
mod cli;
mod console;
mod corpus;
mod handover;
mod marketplace;
mod notify;
mod service;
mod store;
mod support;
mod telegram;
mod whatsapp;
