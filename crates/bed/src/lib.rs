//! The local bed.
