//! Filled in by the telegram adapter work.
