//! qdock: Grid Engine queue methods that run each job in the Docker image it asks for and let
//! the scheduler drive the container's whole life through the Docker Engine API.
//!
//! Data flows one way: environment + argv -> [`job::JobContext`] -> (with [`config::Config`]
//! and [`policy`]) -> [`spec::ContainerSpec`] -> [`engine::Engine`] -> exit code.

pub mod advertise;
pub mod binding;
pub mod config;
pub mod engine;
pub mod environ;
pub mod error;
pub mod gpu;
pub mod gridengine;
pub mod host_images;
pub mod image_ref;
pub mod job;
pub mod job_proof;
pub mod labels;
pub mod limits;
pub mod lineage;
pub mod methods;
pub mod mount;
pub mod mount_source;
pub mod packed_job;
pub mod pattern;
pub mod policy;
pub mod privilege;
pub mod process;
pub mod pull_progress;
pub mod report;
pub mod run_mark;
pub mod signals;
pub mod spec;
pub mod start_command;
pub mod stdio_dir;
pub mod timing;
pub mod trust;
pub mod usage;

pub use error::{Error, Result};
