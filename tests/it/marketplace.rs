//! Filled in by the marketplace adapter work.
