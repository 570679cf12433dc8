//! PutTraceSegments with the X-Ray limits: at most 50 documents per call, 64 KB per document,
//! several calls in flight, backoff on throttling / 5xx / network errors, and unprocessed
//! segments retried when X-Ray says they may succeed later.

use super::{SegmentDocument, count_dropped};
use crate::aws::RetrySettings;
use aws_sdk_xray::error::ProvideErrorMetadata;
use std::time::Instant;

/// PutTraceSegments accepts at most 50 documents per call.
pub const MAX_DOCUMENTS_PER_CALL: usize = 50;

/// X-Ray refuses segment documents over 64 KB.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Error codes of unprocessed segments that are worth sending again.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottledException",
    "ThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
];

static OVERSIZE_LOG: crate::telemetry::LogLimiter =
    crate::telemetry::LogLimiter::new(std::time::Duration::from_secs(10));
static REJECTED_LOG: crate::telemetry::LogLimiter =
    crate::telemetry::LogLimiter::new(std::time::Duration::from_secs(10));

pub struct XRaySender {
    exporter: String,
    client: aws_sdk_xray::Client,
    workers: usize,
    retry: RetrySettings,
}

/// A document ready to send, with its segment id to match unprocessed answers.
struct Encoded {
    id: String,
    json: String,
}

/// Serialises a document, shedding metadata then annotations to fit X-Ray's size limit.
pub fn encode_within_limit(mut document: SegmentDocument) -> Option<String> {
    let json = serde_json::to_string(&document).ok()?;
    if json.len() <= MAX_DOCUMENT_BYTES {
        return Some(json);
    }
    document.metadata.clear();
    let json = serde_json::to_string(&document).ok()?;
    if json.len() <= MAX_DOCUMENT_BYTES {
        return Some(json);
    }
    document.annotations.clear();
    document.cause = None;
    let json = serde_json::to_string(&document).ok()?;
    (json.len() <= MAX_DOCUMENT_BYTES).then_some(json)
}

/// Splits documents into PutTraceSegments calls of at most [`MAX_DOCUMENTS_PER_CALL`].
fn into_calls<T>(mut documents: Vec<T>) -> Vec<Vec<T>> {
    let mut calls = Vec::with_capacity(documents.len().div_ceil(MAX_DOCUMENTS_PER_CALL));
    while !documents.is_empty() {
        let rest = documents.split_off(documents.len().min(MAX_DOCUMENTS_PER_CALL));
        calls.push(std::mem::replace(&mut documents, rest));
    }
    calls
}

/// What one PutTraceSegments call left to do.
enum CallOutcome {
    /// Documents to try again, and documents refused for good.
    Done { retry: Vec<Encoded>, rejected: u64 },
    /// The call failed in a way that may pass later: all of it again.
    Retry(Vec<Encoded>, String),
    /// The call failed for good: all of it dropped.
    Failed(u64, String),
}

impl XRaySender {
    pub fn new(
        exporter: String,
        client: aws_sdk_xray::Client,
        workers: usize,
        retry: RetrySettings,
    ) -> Self {
        XRaySender {
            exporter,
            client,
            workers: workers.max(1),
            retry,
        }
    }

    /// Sends every document, retrying until done or `max_elapsed_time`; returns how many were
    /// dropped (each counted by reason and logged, rate-limited).
    pub async fn send(&self, documents: Vec<SegmentDocument>) -> u64 {
        let mut dropped = 0u64;
        let mut pending = Vec::with_capacity(documents.len());
        for document in documents {
            let id = document.id.clone();
            match encode_within_limit(document) {
                Some(json) => pending.push(Encoded { id, json }),
                None => {
                    dropped += 1;
                    count_dropped(&self.exporter, "too_large", 1);
                    if OVERSIZE_LOG.allow().is_some() {
                        tracing::warn!(exporter = %self.exporter, segment = %id, "segment document over 64 KB even without metadata; dropped");
                    }
                }
            }
        }
        let started = Instant::now();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let mut retry = Vec::new();
            let mut chunks = into_calls(std::mem::take(&mut pending));
            let mut last_error = String::new();
            while !chunks.is_empty() {
                let wave: Vec<Vec<Encoded>> =
                    chunks.drain(..chunks.len().min(self.workers)).collect();
                let mut calls = tokio::task::JoinSet::new();
                for chunk in wave {
                    let client = self.client.clone();
                    calls.spawn(put_trace_segments(client, chunk));
                }
                while let Some(joined) = calls.join_next().await {
                    match joined.expect("send task does not panic") {
                        CallOutcome::Done {
                            retry: again,
                            rejected,
                        } => {
                            retry.extend(again);
                            dropped += rejected;
                            count_dropped(&self.exporter, "rejected", rejected);
                        }
                        CallOutcome::Retry(again, error) => {
                            retry.extend(again);
                            last_error = error;
                        }
                        CallOutcome::Failed(n, error) => {
                            dropped += n;
                            count_dropped(&self.exporter, "permanent_error", n);
                            tracing::error!(exporter = %self.exporter, %error, documents = n, "PutTraceSegments failed permanently; dropped");
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            let budget = self.retry.max_elapsed_time;
            if !self.retry.enabled || (!budget.is_zero() && started.elapsed() >= budget) {
                let n = retry.len() as u64;
                dropped += n;
                count_dropped(&self.exporter, "retries_exhausted", n);
                tracing::error!(exporter = %self.exporter, error = %last_error, documents = n, "giving up after retries; dropped");
                break;
            }
            let wait = self.retry.backoff(attempt);
            tracing::warn!(exporter = %self.exporter, error = %last_error, documents = retry.len(), wait = ?wait, "PutTraceSegments will be retried");
            tokio::time::sleep(wait).await;
            attempt += 1;
            pending = retry;
        }
        dropped
    }
}

async fn put_trace_segments(client: aws_sdk_xray::Client, chunk: Vec<Encoded>) -> CallOutcome {
    let result = client
        .put_trace_segments()
        .set_trace_segment_documents(Some(chunk.iter().map(|d| d.json.clone()).collect()))
        .send()
        .await;
    match result {
        Ok(output) => {
            let mut retry_ids = Vec::new();
            let mut rejected = 0u64;
            for unprocessed in output.unprocessed_trace_segments() {
                let code = unprocessed.error_code().unwrap_or("");
                if RETRYABLE_CODES.contains(&code) {
                    retry_ids.push(unprocessed.id().unwrap_or("").to_string());
                } else {
                    rejected += 1;
                    if let Some(suppressed) = REJECTED_LOG.allow() {
                        tracing::warn!(
                            segment = unprocessed.id().unwrap_or(""),
                            code,
                            message = unprocessed.message().unwrap_or(""),
                            suppressed,
                            "X-Ray rejected a segment"
                        );
                    }
                }
            }
            let retry = chunk
                .into_iter()
                .filter(|d| retry_ids.contains(&d.id))
                .collect();
            CallOutcome::Done { retry, rejected }
        }
        Err(error) => {
            let text = aws_sdk_xray::error::DisplayErrorContext(&error).to_string();
            let retryable = match &error {
                aws_sdk_xray::error::SdkError::ServiceError(service) => {
                    let status = service.raw().status().as_u16();
                    status >= 500
                        || status == 429
                        || service.err().code().is_some_and(|c| c.contains("Throttl"))
                }
                aws_sdk_xray::error::SdkError::ConstructionFailure(_) => false,
                _ => true,
            };
            if retryable {
                CallOutcome::Retry(chunk, text)
            } else {
                CallOutcome::Failed(chunk.len() as u64, text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    fn document(metadata_bytes: usize, annotation_bytes: usize) -> SegmentDocument {
        let mut doc = SegmentDocument {
            name: "svc".into(),
            id: "0000000000000001".into(),
            ..Default::default()
        };
        if metadata_bytes > 0 {
            let mut ns = Map::new();
            ns.insert("blob".into(), Value::String("m".repeat(metadata_bytes)));
            doc.metadata.insert("default".into(), ns);
        }
        if annotation_bytes > 0 {
            doc.annotations
                .insert("a".into(), Value::String("a".repeat(annotation_bytes)));
        }
        doc
    }

    #[test]
    fn calls_hold_at_most_50_documents() {
        let sizes = |n: usize| -> Vec<usize> {
            into_calls((0..n).collect::<Vec<_>>())
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(50), vec![50]);
        assert_eq!(sizes(51), vec![50, 1]);
        assert_eq!(sizes(120), vec![50, 50, 20]);
        assert_eq!(into_calls((0..51).collect())[1], vec![50], "order kept");
    }

    #[test]
    fn documents_are_kept_under_64_kb() {
        let small = encode_within_limit(document(100, 0)).unwrap();
        assert!(small.contains("blob"));
        let base = serde_json::to_string(&document(0, 0)).unwrap().len();
        // Exactly at the limit is kept whole.
        let overhead = serde_json::to_string(&document(1, 0)).unwrap().len() - base - 1;
        let exact = encode_within_limit(document(MAX_DOCUMENT_BYTES - base - overhead, 0)).unwrap();
        assert_eq!(exact.len(), MAX_DOCUMENT_BYTES);
        assert!(exact.contains("blob"));
        // One byte over: metadata goes, the segment stays.
        let shed =
            encode_within_limit(document(MAX_DOCUMENT_BYTES - base - overhead + 1, 0)).unwrap();
        assert!(!shed.contains("blob"));
        let no_annotations = encode_within_limit(document(10, 70_000)).unwrap();
        assert!(!no_annotations.contains("annotations"));
    }
}
