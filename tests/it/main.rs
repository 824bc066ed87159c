//! Integration tests, one binary so CI links once.
//!
//! - `corpus`: the labelled corpus against the built-in packs, with the
//!   accuracy targets of the README.
//! - `cli`: the `kefu` binary as a user runs it.

mod cli;
mod corpus;
