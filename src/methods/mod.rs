//! The flows behind each binary.

pub mod native;
pub mod starter;
