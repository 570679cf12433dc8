//! PutTraceSegments with the X-Ray limits: at most 50 documents per call, 64 KB per document,
//! several calls in flight, backoff on throttling / 5xx / network errors, and unprocessed
//! segments retried when X-Ray says they may succeed later.

use super::SegmentDocument;
use crate::aws::RetrySettings;
use crate::aws::calls::{Answer, Retrying, Unit, send_all};
use crate::aws::signed::{FailureClass, SignedClient};
use crate::exporters::embedded_json;
use crate::internal_events::{DropReason, XrayDocumentsDropped};
use std::fmt::Display;
use std::ops::Range;
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
    let added = embedded_json::try_write(out, document)?;
    Some(out.len() - start - added)
}

/// Appends the document (escaped for the request body), shedding metadata then annotations to
/// fit X-Ray's size limit; false, with nothing appended, when it cannot fit.
/// The document is taken by reference (and shed from in place): at over a kilobyte, moving it
/// into each call cost a copy per span.
fn encode_within_limit(document: &mut SegmentDocument, out: &mut Vec<u8>) -> bool {
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
        match encode_embedded(document, out) {
            Some(size) if size <= MAX_DOCUMENT_BYTES => return true,
            Some(_) => out.truncate(start),
            None => return false,
        }
    }
    false
}

const BODY_HEAD: &[u8] = b"{\"TraceSegmentDocuments\":[";
const BODY_TAIL: &[u8] = b"]}";

/// `{"TraceSegmentDocuments":["…","…"]}` from escaped documents: the body of a call sent again
/// with only the documents X-Ray left unprocessed.
fn request_body(chunk: &[Encoded]) -> bytes::Bytes {
    let size = BODY_HEAD.len()
        + BODY_TAIL.len()
        + chunk.iter().map(|d| d.escaped.len() + 3).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(BODY_HEAD);
    for (i, document) in chunk.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'"');
        body.extend_from_slice(&document.escaped);
        body.push(b'"');
    }
    body.extend_from_slice(BODY_TAIL);
    body.into()
}

/// Documents encoded as they are translated, while each span's strings are still in cache and
/// before the next span's allocations, laid out as the PutTraceSegments bodies they go in:
/// every [`MAX_DOCUMENTS_PER_CALL`] documents between the body's head and tail, so the first
/// attempt of each call sends a slice of one buffer as it is.
pub struct EncodedCalls {
    buffer: Vec<u8>,
    /// Each document's segment id and escaped JSON in `buffer`.
    documents: Vec<(String, Range<usize>)>,
    /// Each closed call's body in `buffer` and how many documents it holds.
    calls: Vec<(Range<usize>, usize)>,
    /// The open call: where its body starts and how many documents it holds.
    open: Option<(usize, usize)>,
}

impl EncodedCalls {
    /// Room for about `documents` documents of a typical size.
    pub fn with_capacity(documents: usize) -> Self {
        EncodedCalls {
            buffer: Vec::with_capacity(documents * 768 + 64),
            documents: Vec::with_capacity(documents),
            calls: Vec::with_capacity(documents.div_ceil(MAX_DOCUMENTS_PER_CALL)),
            open: None,
        }
    }

    /// Appends the document to the open call, shedding metadata then annotations to fit
    /// X-Ray's size limit; gives back its segment id, with nothing appended, when it cannot fit.
    pub fn push(&mut self, document: &mut SegmentDocument) -> Result<(), String> {
        let mark = self.buffer.len();
        match self.open {
            None => self.buffer.extend_from_slice(BODY_HEAD),
            Some(_) => self.buffer.push(b','),
        }
        self.buffer.push(b'"');
        let start = self.buffer.len();
        let id = document.id.to_string();
        if !encode_within_limit(document, &mut self.buffer) {
            self.buffer.truncate(mark);
            return Err(id);
        }
        self.documents.push((id, start..self.buffer.len()));
        self.buffer.push(b'"');
        let (_, count) = self.open.get_or_insert((mark, 0));
        *count += 1;
        if *count == MAX_DOCUMENTS_PER_CALL {
            self.close();
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some((start, count)) = self.open.take() {
            self.buffer.extend_from_slice(BODY_TAIL);
            self.calls.push((start..self.buffer.len(), count));
        }
    }

    /// The calls, each with its body and its documents (for a partial retry).
    fn into_calls(mut self) -> Vec<Call> {
        self.close();
        let buffer = bytes::Bytes::from(self.buffer);
        let mut documents = self.documents.into_iter();
        self.calls
            .into_iter()
            .map(|(body, count)| Call {
                body: Some(buffer.slice(body)),
                documents: documents
                    .by_ref()
                    .take(count)
                    .map(|(id, range)| Encoded {
                        id,
                        escaped: buffer.slice(range),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// One PutTraceSegments call's unit of work.
struct Call {
    /// The body as encoded, while every document of it is still to send.
    body: Option<bytes::Bytes>,
    documents: Vec<Encoded>,
}

impl Unit for Call {
    fn items(&self) -> u64 {
        self.documents.len() as u64
    }
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

    /// Sends every call, up to `num_workers` at once, each retried until done or
    /// `max_elapsed_time`; returns how many documents were dropped (each counted by reason and
    /// logged, rate-limited).
    pub async fn send(self: &Arc<Self>, documents: EncodedCalls) -> u64 {
        send_all(documents.into_calls(), self.workers, |call| {
            let this = self.clone();
            async move {
                let retrying = Retrying {
                    call: "PutTraceSegments",
                    exporter: &this.exporter,
                    settings: &this.retry,
                    report_dropped: report_dropped_documents,
                };
                retrying
                    .send(call, |call| put_trace_segments(&this, call))
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
async fn put_trace_segments(sender: &XRaySender, call: Call) -> Answer<Call> {
    // The body is ours, documents already escaped (see `embedded_json`), signed as it is sent.
    let body = match &call.body {
        Some(body) => body.clone(),
        None => request_body(&call.documents),
    };
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
                rest: call,
                refused: 0,
                error: error.to_string(),
                retry_after: None,
            };
        }
        Err(error) => {
            return Answer::Failed {
                items: call.documents.len() as u64,
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
        rest: Call {
            body: None,
            documents: call
                .documents
                .into_iter()
                .filter(|d| retry_ids.contains(&d.id))
                .collect(),
        },
        refused,
        error: retry_error,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::MetadataValue;
    use super::*;
    use serde_json::Value;

    fn document(metadata_bytes: usize, annotation_bytes: usize) -> SegmentDocument<'static> {
        let mut doc = SegmentDocument {
            name: "svc".into(),
            id: "0000000000000001".into(),
            ..Default::default()
        };
        if metadata_bytes > 0 {
            let blob = MetadataValue::Json(Value::String("m".repeat(metadata_bytes)));
            doc.metadata
                .insert("default".into(), [("blob".into(), blob)].into());
        }
        if annotation_bytes > 0 {
            doc.annotations
                .insert("a".into(), Value::String("a".repeat(annotation_bytes)));
        }
        doc
    }

    /// Each call's body as X-Ray would read it: the segment ids of its documents.
    fn call_ids(calls: &[Call]) -> Vec<Vec<String>> {
        calls
            .iter()
            .map(|call| {
                let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
                let ids: Vec<String> = body["TraceSegmentDocuments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let d: Value = serde_json::from_str(d.as_str().unwrap()).unwrap();
                        d["id"].as_str().unwrap().to_string()
                    })
                    .collect();
                let listed: Vec<&String> = call.documents.iter().map(|d| &d.id).collect();
                assert_eq!(ids.iter().collect::<Vec<_>>(), listed, "body and ids agree");
                // The body a partial retry builds from the same documents is the same bytes.
                assert_eq!(&request_body(&call.documents), call.body.as_ref().unwrap());
                ids
            })
            .collect()
    }

    fn numbered(i: usize, metadata_bytes: usize) -> SegmentDocument<'static> {
        SegmentDocument {
            id: format!("{i:016x}").into(),
            ..document(metadata_bytes, 0)
        }
    }

    #[test]
    fn calls_hold_at_most_50_documents_in_order() {
        let sizes = |n: usize| -> Vec<usize> {
            let mut encoded = EncodedCalls::with_capacity(n);
            for i in 0..n {
                encoded.push(&mut numbered(i, 0)).unwrap();
            }
            assert_eq!(encoded.documents.len(), n);
            call_ids(&encoded.into_calls())
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(50), vec![50]);
        assert_eq!(sizes(51), vec![50, 1]);
        assert_eq!(sizes(120), vec![50, 50, 20]);
        let mut encoded = EncodedCalls::with_capacity(51);
        for i in 0..51 {
            encoded.push(&mut numbered(i, 0)).unwrap();
        }
        let ids = call_ids(&encoded.into_calls());
        assert_eq!(ids[1], vec![format!("{:016x}", 50)], "order kept");
    }

    #[test]
    fn a_document_too_large_leaves_the_bodies_whole() {
        let mut encoded = EncodedCalls::with_capacity(3);
        let mut huge = numbered(0, 0);
        huge.name = "n".repeat(70_000).into();
        // First in a call, in the middle, and last.
        assert_eq!(encoded.push(&mut huge.clone()), Err(format!("{:016x}", 0)));
        encoded.push(&mut numbered(1, 10)).unwrap();
        assert!(encoded.push(&mut huge.clone()).is_err());
        encoded.push(&mut numbered(2, 10)).unwrap();
        assert!(encoded.push(&mut huge).is_err());
        assert_eq!(encoded.documents.len(), 2);
        let ids = call_ids(&encoded.into_calls());
        assert_eq!(
            ids,
            vec![vec![format!("{:016x}", 1), format!("{:016x}", 2)]]
        );
    }

    /// The document as X-Ray receives it: the body's string, unescaped.
    fn embedded(mut document: SegmentDocument) -> Option<String> {
        let mut escaped = Vec::new();
        if !encode_within_limit(&mut document, &mut escaped) {
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
        huge.name = "n".repeat(70_000).into();
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
