//! Bringing outside data into the lake's raw tables.

pub mod import;
