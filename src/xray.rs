//! What the awsxray receiver and the awsxray exporter share: the span attributes that carry
//! X-Ray fields through the OTLP model (so a segment received from an X-Ray SDK is written back
//! as it was sent), and the helpers both sides use for ids and attribute lists.

/// The keys of a span's attributes that were X-Ray annotations (the rest become metadata).
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";
/// Prefix of attributes holding a metadata namespace as JSON.
pub const METADATA_PREFIX: &str = "aws.xray.metadata.";
/// Set by the receiver for segments still in progress.
pub const IN_PROGRESS_ATTRIBUTE: &str = "aws.xray.inprogress";
/// The document's `error`, `fault` and `throttle` flags, as sent. The receiver sets all three
/// on every span it makes, so their presence also says the span came from an X-Ray document:
/// the exporter then writes the flags as they were instead of deriving them from the status.
pub const ERROR_ATTRIBUTE: &str = "aws.xray.error";
pub const FAULT_ATTRIBUTE: &str = "aws.xray.fault";
pub const THROTTLE_ATTRIBUTE: &str = "aws.xray.throttle";
/// `http.request.x_forwarded_for`, when the document had it.
pub const X_FORWARDED_FOR_ATTRIBUTE: &str = "aws.xray.x_forwarded_for";
/// `cause.working_directory`, when the document had it.
pub const WORKING_DIRECTORY_ATTRIBUTE: &str = "aws.xray.cause.working_directory";
/// Attributes of an exception event holding the exception's X-Ray fields.
pub const EXCEPTION_ID_ATTRIBUTE: &str = "aws.xray.exception.id";
pub const EXCEPTION_REMOTE_ATTRIBUTE: &str = "aws.xray.exception.remote";
pub const EXCEPTION_TRUNCATED_ATTRIBUTE: &str = "aws.xray.exception.truncated";
pub const EXCEPTION_SKIPPED_ATTRIBUTE: &str = "aws.xray.exception.skipped";
pub const EXCEPTION_CAUSE_ATTRIBUTE: &str = "aws.xray.exception.cause";

/// Sorts by key, keeping only the last of entries with equal keys, in place: what a map built
/// from the list would hold. (Reversed, a stable sort puts the last-written first in each run.)
pub fn sort_keeping_last<T>(entries: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    entries.reverse();
    entries.sort_by(|a, b| key(a).cmp(key(b)));
    entries.dedup_by(|later, kept| key(later) == key(kept));
}

/// Ids are written as lower-case hex by the pipeline's value helpers.
pub use crate::pipeline::values::{hex, push_hex};
