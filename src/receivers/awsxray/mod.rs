//! The `awsxray` receiver: the X-Ray daemon's UDP protocol (`udp`) and its TCP sampling proxy
//! (`proxy`), translated into OTLP spans (`translate`).

mod config;
pub mod proxy;
pub mod translate;
mod udp;

pub use config::{AwsXrayReceiverConfig, ProxyServerConfig};

use crate::pipeline::{Consumers, Shutdown};
use tokio::task::JoinHandle;

/// Starts the UDP readers and the sampling proxy.
pub async fn start(
    id: &str,
    config: &AwsXrayReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut tasks = udp::start(id, &config.endpoint, consumers, shutdown.clone()).await?;
    tasks.push(proxy::start(id, &config.proxy_server, shutdown).await?);
    Ok(tasks)
}
