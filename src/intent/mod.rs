//! Intents: what a buyer is asking about (pure).
//!
//! [`catalog`] reads and validates the packs in `intents/`; [`matcher`]
//! compiles them and classifies messages; [`fuzzy`] forgives one-letter typos;
//! [`overlap`] lists keywords two intents compete for, for `kefu check`.

pub mod catalog;
pub mod fuzzy;
pub mod matcher;
pub mod overlap;

pub use catalog::{Catalog, IntentDef, PhraseKind};
pub use matcher::{Classification, Fired, FiredKind, IntentScore, Matcher, Scratch, Veto};
