//! Filled in by the whatsapp adapter work.
