//! Internal events: one small type per kind of drop or refusal. `emit()` counts it with a
//! reason label and logs it, rate-limited per kind, in one call, so a drop is never counted
//! without being logged (or the reverse) and each metric name is spelled once, here.

use crate::pipeline::{Refused, Signal};
use crate::receivers::awsxray::translate::DatagramError;
use crate::receivers::statsd::parse::LineError;
use crate::telemetry::LogLimiter;
use std::fmt::Display;
use std::time::Duration;

/// How often each kind of event may be logged; the ones in between are counted as suppressed.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why items were dropped after they had been accepted: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A panic inside a processor or exporter cost the batch (see `panic_policy`).
    InternalError,
    /// AWS answered with an error that retrying cannot fix.
    PermanentError,
    /// Still failing when `retry_on_failure.max_elapsed_time` ran out.
    RetriesExhausted,
    /// AWS accepted the call but refused these items (unprocessed segments, rejected events).
    Rejected,
    /// Over AWS's size limit even after trimming.
    TooLarge,
    /// A span that cannot become a segment document.
    Untranslatable,
    /// Outside the time window the destination takes (X-Ray's OTLP endpoint: at most 2 hours
    /// ahead, 14 days back): it would be refused.
    OutsideTimeWindow,
    /// A filter condition failed on the data (the collector drops the batch too).
    ConditionError,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::InternalError => "internal_error",
            DropReason::PermanentError => "permanent_error",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::Untranslatable => "untranslatable",
            DropReason::OutsideTimeWindow => "outside_time_window",
            DropReason::ConditionError => "condition_error",
        }
    }
}

/// Segment documents that never reached X-Ray.
pub struct XrayDocumentsDropped<'a> {
    pub exporter: &'a str,
    pub reason: DropReason,
    pub documents: u64,
    pub error: &'a dyn Display,
}

impl XrayDocumentsDropped<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        if self.documents == 0 {
            return;
        }
        metrics::counter!("otelsidecar_xray_documents_dropped", "exporter" => self.exporter.to_string(), "reason" => self.reason.as_str())
            .increment(self.documents);
        if let Some(suppressed) = LOG.allow() {
            tracing::error!(exporter = %self.exporter, reason = self.reason.as_str(), documents = self.documents, error = %self.error, suppressed, "X-Ray segment documents dropped");
        }
    }
}

/// EMF log events that never reached CloudWatch Logs.
pub struct EmfEventsDropped<'a> {
    pub exporter: &'a str,
    pub reason: DropReason,
    pub events: u64,
    pub error: &'a dyn Display,
}

impl EmfEventsDropped<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        if self.events == 0 {
            return;
        }
        metrics::counter!("otelsidecar_emf_events_dropped", "exporter" => self.exporter.to_string(), "reason" => self.reason.as_str())
            .increment(self.events);
        if let Some(suppressed) = LOG.allow() {
            let message = match self.reason {
                DropReason::Rejected => "CloudWatch Logs rejected events",
                _ => "EMF events dropped",
            };
            tracing::error!(exporter = %self.exporter, reason = self.reason.as_str(), events = self.events, error = %self.error, suppressed, "{message}");
        }
    }
}

/// Spans, data points or log records an OTLP exporter did not deliver: refused by the
/// destination (a partial success, a permanent error) or out of retries.
pub struct OtlpItemsDropped<'a> {
    pub exporter: &'a str,
    pub reason: DropReason,
    pub items: u64,
    pub error: &'a dyn Display,
}

impl OtlpItemsDropped<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        if self.items == 0 {
            return;
        }
        metrics::counter!("otelsidecar_otlp_items_dropped", "exporter" => self.exporter.to_string(), "reason" => self.reason.as_str())
            .increment(self.items);
        if let Some(suppressed) = LOG.allow() {
            let message = match self.reason {
                DropReason::Rejected => "the OTLP destination rejected items (partial success)",
                _ => "OTLP items dropped",
            };
            tracing::error!(exporter = %self.exporter, reason = self.reason.as_str(), items = self.items, error = %self.error, suppressed, "{message}");
        }
    }
}

/// [`OtlpItemsDropped`] in the shape the AWS retry loop reports drops with.
pub fn report_otlp_dropped(exporter: &str, reason: DropReason, items: u64, error: &dyn Display) {
    OtlpItemsDropped {
        exporter,
        reason,
        items,
        error,
    }
    .emit();
}

/// An export that failed as a whole: the exporter-level count of what was not sent.
pub struct ExportFailed<'a> {
    pub exporter: &'a str,
    pub signal: Signal,
    pub items: u64,
    /// Written to the log; `None` when the exporter already emitted the drop with its reason.
    pub error: Option<&'a dyn Display>,
}

impl ExportFailed<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        metrics::counter!(format!("otelcol_exporter_send_failed_{}", self.signal.item_name()), "exporter" => self.exporter.to_string())
            .increment(self.items);
        if let Some(error) = self.error
            && let Some(suppressed) = LOG.allow()
        {
            tracing::error!(exporter = %self.exporter, %error, items = self.items, suppressed, "export failed; data dropped");
        }
    }
}

/// Items a processor dropped after they were accepted.
pub struct ProcessorItemsDropped<'a> {
    pub processor: &'a str,
    pub reason: DropReason,
    pub items: u64,
    pub error: &'a dyn Display,
}

impl ProcessorItemsDropped<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        metrics::counter!("otelsidecar_processor_dropped_items", "processor" => self.processor.to_string(), "reason" => self.reason.as_str())
            .increment(self.items);
        if let Some(suppressed) = LOG.allow() {
            tracing::error!(processor = %self.processor, reason = self.reason.as_str(), items = self.items, error = %self.error, suppressed, "processor dropped a batch");
        }
    }
}

/// Why StatsD lines were not aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsdSkip {
    /// The line does not parse (or is a DogStatsD event or service check, not a metric).
    Parse(LineError),
    /// Longer than a datagram can be.
    LineTooLong,
    /// The interval already holds as many series as the aggregator keeps.
    TooManySeries,
}

impl StatsdSkip {
    fn reason(self) -> &'static str {
        match self {
            StatsdSkip::Parse(error) => error.reason(),
            StatsdSkip::LineTooLong => "line_too_long",
            StatsdSkip::TooManySeries => "too_many_series",
        }
    }
}

/// StatsD lines that were not aggregated; the lines beside them still count. DogStatsD events
/// and service checks are counted but not logged (clients send them on purpose).
pub struct StatsdLinesSkipped<'a> {
    pub receiver: &'a str,
    pub skip: StatsdSkip,
    pub lines: u64,
    /// The line (or one of them), shown in the log.
    pub sample: &'a str,
}

impl StatsdLinesSkipped<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        if self.lines == 0 {
            return;
        }
        metrics::counter!("otelsidecar_receiver_statsd_lines_skipped", "receiver" => self.receiver.to_string(), "reason" => self.skip.reason())
            .increment(self.lines);
        if self.skip != StatsdSkip::Parse(LineError::NotAMetric)
            && let Some(suppressed) = LOG.allow()
        {
            let line: String = self.sample.chars().take(200).collect();
            tracing::warn!(receiver = %self.receiver, reason = self.skip.reason(), lines = self.lines, %line, suppressed, "StatsD lines skipped");
        }
    }
}

/// A request (or a StatsD flush) a receiver could not hand to its pipelines: the client is
/// told to retry (503 / UNAVAILABLE), or for StatsD the interval is lost.
pub struct ReceiverRefused<'a> {
    pub receiver: &'a str,
    pub transport: &'a str,
    pub signal: Signal,
    pub items: u64,
    pub refused: Refused,
}

impl ReceiverRefused<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        metrics::counter!(format!("otelcol_receiver_refused_{}", self.signal.item_name()), "receiver" => self.receiver.to_string(), "transport" => self.transport.to_string())
            .increment(self.items);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(receiver = %self.receiver, transport = %self.transport, items = self.items, refused = %self.refused, suppressed, "data refused");
        }
    }
}

/// An X-Ray daemon datagram that could not be read; the other datagrams still count.
pub struct XrayDatagramDropped<'a> {
    pub receiver: &'a str,
    pub error: DatagramError,
}

impl XrayDatagramDropped<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        metrics::counter!("otelsidecar_receiver_bad_datagrams", "receiver" => self.receiver.to_string(), "reason" => self.error.reason())
            .increment(1);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(receiver = %self.receiver, reason = self.error.reason(), error = %self.error, suppressed, "X-Ray datagram dropped");
        }
    }
}

/// A request the X-Ray sampling proxy refused to sign and forward.
pub struct SamplingRequestRefused<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

impl SamplingRequestRefused<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        metrics::counter!("otelsidecar_xray_proxy_refused_requests").increment(1);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(method = %self.method, path = %self.path, suppressed, "sampling proxy refused a request that is not an X-Ray sampling call");
        }
    }
}

/// A persistent queue file that could not be read back; skipped and removed.
pub struct QueuedBatchCorrupt<'a> {
    pub exporter: &'a str,
    pub path: &'a std::path::Path,
    pub reason: &'a str,
}

impl QueuedBatchCorrupt<'_> {
    pub fn emit(&self) {
        static LOG: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        metrics::counter!("otelsidecar_exporter_queue_corrupt_batches", "exporter" => self.exporter.to_string())
            .increment(1);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(exporter = %self.exporter, path = %self.path.display(), reason = %self.reason, suppressed, "skipping a corrupt queued batch");
        }
    }
}
