//! The flows behind each binary.

pub mod admin;
pub mod cell_images;
pub mod control;
pub mod gc;
pub mod jsv;
pub mod load_sensor;
pub mod native;
pub mod starter;
pub mod stdio_gc;
pub mod usage;
pub mod watch;
