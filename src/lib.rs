//! otel-sidecar: a small drop-in replacement for the ADOT collector sidecar.
//!
//! The binary reads an OpenTelemetry Collector YAML config, builds the pipelines it describes
//! (receivers → processors → exporters, every hop a bounded queue) and runs them until SIGTERM,
//! when it flushes everything it accepted before exiting.
#![forbid(unsafe_code)]

pub mod aws;
pub mod components;
pub mod config;
pub mod exporters;
pub mod extensions;
pub mod http_server;
pub mod internal_events;
pub mod loadgen;
pub mod panic_policy;
pub mod pipeline;
pub mod processors;
pub mod receivers;
pub mod service;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod xray;

/// The version reported in logs and the scope version of the components that set one.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
