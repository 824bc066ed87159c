//! Filled in by the load benchmark work.
fn main() {}
