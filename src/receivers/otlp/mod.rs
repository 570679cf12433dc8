//! The `otlp` receiver: OTLP over gRPC and HTTP (protobuf and JSON), one listener per protocol
//! shared by every pipeline that lists the receiver.

mod config;
mod grpc;
mod http;
pub mod json;

pub use config::{GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

use crate::pipeline::{Consumers, Shutdown};
use tokio::task::JoinHandle;

/// `receivers.otlp`.
/// Starts the configured protocols.
pub async fn start(
    id: &str,
    config: &OtlpReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if let Some(grpc) = &config.protocols.grpc {
        tasks.push(grpc::start(id, grpc, consumers.clone(), shutdown.clone()).await?);
    }
    if let Some(http) = &config.protocols.http {
        tasks.push(http::start(id, http, consumers, shutdown).await?);
    }
    Ok(tasks)
}
