//! The `awsemf` exporter: metrics become CloudWatch Embedded Metric Format log events
//! (`translate`, with `delta` for cumulative sources), sent with PutLogEvents (`send`).

pub mod budget;
mod config;
mod declaration;
pub mod delta;
mod exporter;
pub mod fleet;
pub mod labels;
pub mod send;
pub mod translate;

pub use config::{
    AwsEmfExporterConfig, EmfVersion, MetricDescriptor, OutputDestination, ResourceToTelemetry,
    check_log_group_settings,
};
pub use exporter::{AwsEmfExporter, RENDERED_BYTES_IN_FLIGHT, RenderedRoom};
