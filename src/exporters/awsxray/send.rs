//! PutTraceSegments with the X-Ray limits: at most 50 documents per call, 64 KB per document,
//! several calls in flight, backoff on throttling / 5xx / network errors, and unprocessed
//! segments retried when X-Ray says they may succeed later.

use super::SegmentDocument;
use crate::aws::RetrySettings;
use crate::aws::calls::{Answer, Retrying, send_all};
use crate::aws::signed::{FailureClass, SignedClient};
use crate::exporters::embedded_json::EmbeddedJson;
use crate::internal_events::{DropReason, XrayDocumentsDropped};
use std::fmt::Display;
use std::sync::Arc;

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

pub struct XRaySender {
    exporter: String,
    client: Arc<SignedClient>,
    workers: usize,
    retry: RetrySettings,
}

/// A document ready to send, with its segment id to match unprocessed answers.
struct Encoded {
    id: String,
    /// The document's JSON, escaped to sit inside a JSON string of the request body: a slice
    /// of one buffer holding the whole payload's documents, so a document costs no allocation.
    escaped: bytes::Bytes,
}

/// Appends the document's JSON escaped for embedding; returns the size of the JSON itself.
fn encode_embedded(document: &SegmentDocument, out: &mut Vec<u8>) -> Option<usize> {
    let start = out.len();
    let mut added = 0;
    let formatter = EmbeddedJson::new(&mut added);
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    if serde::Serialize::serialize(document, &mut serializer).is_err() {
        out.truncate(start);
        return None;
    }
    Some(out.len() - start - added)
}

/// Appends the document (escaped for the request body), shedding metadata then annotations to
/// fit X-Ray's size limit; false, with nothing appended, when it cannot fit.
fn encode_within_limit(mut document: SegmentDocument, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    for attempt in 0..3 {
        match attempt {
            0 => {}
            1 => document.metadata.clear(),
            _ => {
                document.annotations.clear();
                document.cause = None;
            }
        }
        match encode_embedded(&document, out) {
            Some(size) if size <= MAX_DOCUMENT_BYTES => return true,
            Some(_) => out.truncate(start),
            None => return false,
        }
    }
    false
}

/// `{"TraceSegmentDocuments":["…","…"]}` from escaped documents.
fn request_body(chunk: &[Encoded]) -> bytes::Bytes {
    const HEAD: &[u8] = b"{\"TraceSegmentDocuments\":[";
    let size = HEAD.len() + 2 + chunk.iter().map(|d| d.escaped.len() + 3).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(HEAD);
    for (i, document) in chunk.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'"');
        body.extend_from_slice(&document.escaped);
        body.push(b'"');
    }
    body.extend_from_slice(b"]}");
    body.into()
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

impl XRaySender {
    pub fn new(
        exporter: String,
        client: Arc<SignedClient>,
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

    /// Sends every document, up to `num_workers` calls at once, each retried until done or
    /// `max_elapsed_time`; returns how many were dropped (each counted by reason and logged,
    /// rate-limited).
    pub async fn send(self: &Arc<Self>, documents: Vec<SegmentDocument>) -> u64 {
        let mut dropped = 0u64;
        let mut buffer = Vec::with_capacity(documents.len() * 768);
        let mut encoded = Vec::with_capacity(documents.len());
        for document in documents {
            let id = document.id.clone();
            let start = buffer.len();
            if encode_within_limit(document, &mut buffer) {
                encoded.push((id, start..buffer.len()));
            } else {
                dropped += 1;
                XrayDocumentsDropped {
                    exporter: &self.exporter,
                    reason: DropReason::TooLarge,
                    documents: 1,
                    error: &format_args!("segment {id} is over 64 KB even without metadata"),
                }
                .emit();
            }
        }
        let buffer = bytes::Bytes::from(buffer);
        let encoded: Vec<Encoded> = encoded
            .into_iter()
            .map(|(id, range)| Encoded {
                id,
                escaped: buffer.slice(range),
            })
            .collect();
        dropped
            + send_all(into_calls(encoded), self.workers, |chunk| {
                let this = self.clone();
                async move {
                    let retrying = Retrying {
                        call: "PutTraceSegments",
                        exporter: &this.exporter,
                        settings: &this.retry,
                        report_dropped: report_dropped_documents,
                    };
                    retrying
                        .send(chunk, |chunk| put_trace_segments(&this, chunk))
                        .await
                }
            })
            .await
    }
}

fn report_dropped_documents(exporter: &str, reason: DropReason, items: u64, error: &dyn Display) {
    XrayDocumentsDropped {
        exporter,
        reason,
        documents: items,
        error,
    }
    .emit();
}

/// The part of PutTraceSegments' answer that matters: what was not stored.
#[derive(serde::Deserialize, Default)]
struct PutTraceSegmentsAnswer {
    #[serde(default, rename = "UnprocessedTraceSegments")]
    unprocessed: Vec<UnprocessedSegment>,
}

#[derive(serde::Deserialize)]
struct UnprocessedSegment {
    #[serde(default, rename = "Id")]
    id: Option<String>,
    #[serde(default, rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(default, rename = "Message")]
    message: Option<String>,
}

/// One PutTraceSegments call: unprocessed segments X-Ray may take later are sent again, the
/// others are refused for good.
async fn put_trace_segments(sender: &XRaySender, chunk: Vec<Encoded>) -> Answer<Vec<Encoded>> {
    // The body is ours, documents already escaped (see `EmbeddedJson`), signed as it is sent.
    let body = request_body(&chunk);
    let result = sender
        .client
        .post(
            "/TraceSegments",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .map(|answer| {
            serde_json::from_slice::<PutTraceSegmentsAnswer>(&answer).unwrap_or_default()
        });
    let answer = match result {
        Ok(answer) => answer,
        Err(error) if error.class == FailureClass::Retryable => {
            return Answer::Again {
                rest: chunk,
                refused: 0,
                error: error.to_string(),
            };
        }
        Err(error) => {
            return Answer::Failed {
                items: chunk.len() as u64,
                error: error.to_string(),
            };
        }
    };
    let mut retry_ids = Vec::new();
    let mut retry_error = String::new();
    let mut refused = 0u64;
    let mut refusal = String::new();
    for unprocessed in answer.unprocessed {
        let id = unprocessed.id.unwrap_or_default();
        let code = unprocessed.error_code.unwrap_or_default();
        if RETRYABLE_CODES.contains(&code.as_str()) {
            if retry_error.is_empty() {
                retry_error = format!("segment {id}: {code}");
            }
            retry_ids.push(id);
        } else {
            refused += 1;
            if refusal.is_empty() {
                refusal = format!(
                    "segment {id}: {code}: {}",
                    unprocessed.message.unwrap_or_default()
                );
            }
        }
    }
    report_dropped_documents(&sender.exporter, DropReason::Rejected, refused, &refusal);
    if retry_ids.is_empty() {
        return Answer::Done { refused };
    }
    Answer::Again {
        rest: chunk
            .into_iter()
            .filter(|d| retry_ids.contains(&d.id))
            .collect(),
        refused,
        error: retry_error,
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

    /// The document as X-Ray receives it: the body's string, unescaped.
    fn embedded(document: SegmentDocument) -> Option<String> {
        let mut escaped = Vec::new();
        if !encode_within_limit(document, &mut escaped) {
            assert!(
                escaped.is_empty(),
                "nothing appended for a refused document"
            );
            return None;
        }
        let quoted = format!("\"{}\"", String::from_utf8(escaped).unwrap());
        Some(serde_json::from_str::<String>(&quoted).unwrap())
    }

    #[test]
    fn documents_are_kept_under_64_kb() {
        let small = embedded(document(100, 0)).unwrap();
        assert!(small.contains("blob"));
        let base = serde_json::to_string(&document(0, 0)).unwrap().len();
        // Exactly at the limit is kept whole.
        let overhead = serde_json::to_string(&document(1, 0)).unwrap().len() - base - 1;
        let exact = embedded(document(MAX_DOCUMENT_BYTES - base - overhead, 0)).unwrap();
        assert_eq!(exact.len(), MAX_DOCUMENT_BYTES);
        assert!(exact.contains("blob"));
        // One byte over: metadata goes, the segment stays.
        let shed = embedded(document(MAX_DOCUMENT_BYTES - base - overhead + 1, 0)).unwrap();
        assert!(!shed.contains("blob"));
        let no_annotations = embedded(document(10, 70_000)).unwrap();
        assert!(!no_annotations.contains("annotations"));
        // What cannot be shed and is still too large is refused, leaving the buffer as it was.
        let mut huge = document(0, 0);
        huge.name = "n".repeat(70_000);
        assert!(embedded(huge).is_none());
    }

    #[test]
    fn embedded_documents_unescape_to_the_plain_json() {
        let mut doc = document(0, 0);
        doc.name = "quote \" backslash \\ slash / newline \n tab \t bell \u{7} é 😀".into();
        doc.annotations
            .insert("k\"ey".into(), Value::String("\r\u{8}\u{c}\u{1f}".into()));
        let plain = serde_json::to_string(&doc).unwrap();
        let mut escaped = Vec::new();
        let size = encode_embedded(&doc, &mut escaped).unwrap();
        let escaped = bytes::Bytes::from(escaped);
        assert_eq!(size, plain.len(), "the document's own size is counted");
        assert_eq!(embedded(doc).unwrap(), plain);
        // And the whole body is the JSON the SDK would have written.
        let body = request_body(&[
            Encoded {
                id: "a".into(),
                escaped: escaped.clone(),
            },
            Encoded {
                id: "b".into(),
                escaped,
            },
        ]);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"TraceSegmentDocuments": [plain.clone(), plain]})
        );
    }
}
