//! costop core (see crate docs).
