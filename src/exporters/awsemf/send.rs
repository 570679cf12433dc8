//! PutLogEvents with CloudWatch Logs' real limits (1,048,576 bytes per call counting 26 bytes
//! per event, 10,000 events, 24 hours between first and last event, chronological order), the
//! `x-amzn-logs-format: json/emf` header, log group and stream created when missing, and
//! backoff on throttling, 5xx and network errors.

use super::translate::EmfEvent;
use crate::aws::RetrySettings;
use crate::aws::calls::{Answer, Retrying, send_all};
use crate::aws::signed::{CallError, FailureClass, SignedClient};
use crate::internal_events::{DropReason, EmfEventsDropped};
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Arc;

pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Bytes CloudWatch Logs adds to every event when checking the batch size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

/// Splits one stream's events (sorted by time) into PutLogEvents calls within the limits.
pub fn into_batches(events: Vec<EmfEvent>) -> Vec<Vec<EmfEvent>> {
    let mut batches = Vec::new();
    let mut current: Vec<EmfEvent> = Vec::new();
    let mut bytes = 0;
    for event in events {
        let size = event.size + EVENT_OVERHEAD_BYTES;
        let too_long = current
            .first()
            .is_some_and(|first| event.timestamp_ms - first.timestamp_ms > MAX_BATCH_SPAN_MS);
        if !current.is_empty()
            && (current.len() == MAX_BATCH_EVENTS || bytes + size > MAX_BATCH_BYTES || too_long)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(event);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The PutLogEvents request body: `{"logGroupName":…,"logStreamName":…,"logEvents":[…]}`.
pub fn request_body(group: &str, stream: &str, batch: &[EmfEvent]) -> bytes::Bytes {
    let size =
        64 + group.len() + stream.len() + batch.iter().map(|e| e.escaped.len() + 48).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    let json = |body: &mut Vec<u8>, text: &str| {
        serde_json::to_writer(&mut *body, text).expect("writing JSON into memory cannot fail")
    };
    body.extend_from_slice(b"{\"logGroupName\":");
    json(&mut body, group);
    body.extend_from_slice(b",\"logStreamName\":");
    json(&mut body, stream);
    body.extend_from_slice(b",\"logEvents\":[");
    for (i, event) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"timestamp\":");
        serde_json::to_writer(&mut body, &event.timestamp_ms)
            .expect("writing JSON into memory cannot fail");
        body.extend_from_slice(b",\"message\":\"");
        body.extend_from_slice(&event.escaped);
        body.extend_from_slice(b"\"}");
    }
    body.extend_from_slice(b"]}");
    body.into()
}

pub struct LogsSender {
    pub exporter: String,
    /// For the cold calls: creating the log group and stream, retention.
    pub client: aws_sdk_cloudwatchlogs::Client,
    /// For PutLogEvents.
    pub signed: SignedClient,
    pub retry: RetrySettings,
    /// PutLogEvents calls in flight at once (`num_workers`).
    pub workers: usize,
    pub retention_days: i32,
    pub tags: BTreeMap<String, String>,
}

impl LogsSender {
    /// A sender with the exporter's AWS session (region, credentials, endpoint, workers),
    /// `retry_on_failure`, and the retention and tags of the groups it creates.
    pub async fn new(
        exporter: &str,
        session: &crate::aws::AwsSessionSettings,
        retry: &RetrySettings,
        retention_days: i32,
        tags: &BTreeMap<String, String>,
    ) -> Result<Self, crate::exporters::ExportError> {
        use crate::exporters::ExportError;
        let sdk = session
            .sdk_config()
            .await
            .map_err(|e| ExportError::Setup(e.to_string()))?;
        let signed = session
            .signed_client(&sdk, crate::aws::signed::AwsService::Logs)
            .await
            .map_err(ExportError::Setup)?;
        Ok(LogsSender {
            exporter: exporter.to_string(),
            client: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            signed,
            retry: retry.clone(),
            workers: session.num_workers.max(1),
            retention_days,
            tags: tags.clone(),
        })
    }
}

/// The part of PutLogEvents' answer that matters: which events were refused.
#[derive(serde::Deserialize, Default)]
struct PutLogEventsAnswer {
    #[serde(default, rename = "rejectedLogEventsInfo")]
    rejected: Option<RejectedEvents>,
}

#[derive(serde::Deserialize, Debug)]
struct RejectedEvents {
    #[serde(default, rename = "tooNewLogEventStartIndex")]
    too_new_start: Option<i64>,
    #[serde(default, rename = "tooOldLogEventEndIndex")]
    too_old_end: Option<i64>,
    #[serde(default, rename = "expiredLogEventEndIndex")]
    expired_end: Option<i64>,
}

impl LogsSender {
    /// Sends every event, up to `num_workers` calls at once (CloudWatch Logs takes concurrent
    /// PutLogEvents to one stream since sequence tokens went away), each batch retried until
    /// done or `max_elapsed_time`; returns how many were dropped (counted and logged).
    pub async fn send(self: &Arc<Self>, events: Vec<EmfEvent>) -> u64 {
        let mut streams: BTreeMap<(Arc<str>, Arc<str>), Vec<EmfEvent>> = BTreeMap::new();
        for event in events {
            streams
                .entry((event.log_group.clone(), event.log_stream.clone()))
                .or_default()
                .push(event);
        }
        let batches = streams
            .into_iter()
            .flat_map(|((group, stream), mut events)| {
                events.sort_by_key(|e| e.timestamp_ms);
                into_batches(events)
                    .into_iter()
                    .map(move |batch| (group.clone(), stream.clone(), batch))
            });
        send_all(batches, self.workers, |(group, stream, batch)| {
            let this = self.clone();
            async move {
                let retrying = Retrying {
                    call: "PutLogEvents",
                    exporter: &this.exporter,
                    settings: &this.retry,
                    report_dropped: report_dropped_events,
                };
                retrying
                    .send(batch, |batch| this.put_creating(&group, &stream, batch))
                    .await
            }
        })
        .await
    }

    /// PutLogEvents, and when the log group or stream is missing, creates them and calls again.
    async fn put_creating(
        &self,
        group: &str,
        stream: &str,
        batch: Vec<EmfEvent>,
    ) -> Answer<Vec<EmfEvent>> {
        let mut result = self.put(group, stream, &batch).await;
        if matches!(&result, Err(error) if error.class == FailureClass::Missing) {
            if let Err(error) = self.create_destination(group, stream).await {
                tracing::warn!(exporter = %self.exporter, %error, "cannot create log group/stream");
            }
            result = self.put(group, stream, &batch).await;
        }
        match result {
            Ok(refused) => Answer::Done { refused },
            Err(error) if error.class == FailureClass::Permanent => Answer::Failed {
                items: batch.len() as u64,
                error: error.to_string(),
            },
            // Still missing after creating it counts as a failure that may pass later.
            Err(error) => Answer::Again {
                rest: batch,
                refused: 0,
                error: error.to_string(),
                retry_after: None,
            },
        }
    }

    /// One PutLogEvents call; returns how many events CloudWatch rejected.
    async fn put(&self, group: &str, stream: &str, batch: &[EmfEvent]) -> Result<u64, CallError> {
        // The body is ours, each message escaped in one pass into one buffer.
        let body = request_body(group, stream, batch);
        let answer = self
            .signed
            .post(
                "/",
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", "Logs_20140328.PutLogEvents"),
                    ("x-amzn-logs-format", "json/emf"),
                ],
                body,
            )
            .await?;
        let answer: PutLogEventsAnswer = serde_json::from_slice(&answer).unwrap_or_default();
        let Some(info) = answer.rejected else {
            return Ok(0);
        };
        let len = batch.len() as i64;
        let mut rejected = 0;
        if let Some(end) = info.too_old_end {
            rejected += end.clamp(0, len);
        }
        if let Some(start) = info.too_new_start {
            rejected += (len - start).max(0);
        }
        if let Some(end) = info.expired_end {
            rejected += end.clamp(0, len);
        }
        report_dropped_events(
            &self.exporter,
            DropReason::Rejected,
            rejected as u64,
            &format_args!("{info:?}"),
        );
        Ok(rejected as u64)
    }

    /// CreateLogGroup (with tags) → PutRetentionPolicy → CreateLogStream; "already exists" is fine.
    async fn create_destination(&self, group: &str, stream: &str) -> Result<(), String> {
        let exists = |code: Option<&str>| code == Some("ResourceAlreadyExistsException");
        let mut create = self.client.create_log_group().log_group_name(group);
        for (k, v) in &self.tags {
            create = create.tags(k, v);
        }
        match create.send().await {
            Ok(_) => {
                tracing::info!(exporter = %self.exporter, log_group = group, "created log group");
                if self.retention_days > 0 {
                    self.client
                        .put_retention_policy()
                        .log_group_name(group)
                        .retention_in_days(self.retention_days)
                        .send()
                        .await
                        .map_err(|e| {
                            aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string()
                        })?;
                }
            }
            Err(e) if exists(e.code()) => {}
            Err(e) => return Err(aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string()),
        }
        match self
            .client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if exists(e.code()) => Ok(()),
            Err(e) => Err(aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string()),
        }
    }
}

fn report_dropped_events(exporter: &str, reason: DropReason, items: u64, error: &dyn Display) {
    EmfEventsDropped {
        exporter,
        reason,
        events: items,
        error,
    }
    .emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64, bytes: usize) -> EmfEvent {
        EmfEvent::from_message("g", "s", ts, &"x".repeat(bytes))
    }

    #[test]
    fn batches_respect_the_event_count() {
        let sizes: Vec<usize> = into_batches((0..20_001).map(|i| event(i, 10)).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![10_000, 10_000, 1]);
    }

    #[test]
    fn batches_respect_the_byte_limit_exactly() {
        // Four events that fill the limit exactly, counting 26 bytes each.
        let per_event = MAX_BATCH_BYTES / 4 - EVENT_OVERHEAD_BYTES;
        let exact: Vec<EmfEvent> = (0..4).map(|i| event(i, per_event)).collect();
        assert_eq!(into_batches(exact).len(), 1);
        let mut over: Vec<EmfEvent> = (0..4).map(|i| event(i, per_event)).collect();
        over[3] = event(3, per_event + 1);
        assert_eq!(
            into_batches(over).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 1]
        );
    }

    #[test]
    fn batches_span_at_most_24_hours() {
        let events = vec![
            event(0, 1),
            event(MAX_BATCH_SPAN_MS, 1),
            event(MAX_BATCH_SPAN_MS + 1, 1),
        ];
        assert_eq!(
            into_batches(events)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![2, 1]
        );
    }

    #[test]
    fn the_request_body_carries_each_message_as_a_json_string() {
        let messages = [
            r#"{"a":"quote \" backslash \\ tab \t","n":1}"#.to_string(),
            "control \u{1} newline \n non-ASCII é 漢".to_string(),
        ];
        let batch: Vec<EmfEvent> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| EmfEvent::from_message("g", "s", 1_700_000_000_000 + i as i64, m))
            .collect();
        let body: serde_json::Value =
            serde_json::from_slice(&request_body("/group \"x\"", "stream", &batch)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "logGroupName": "/group \"x\"",
                "logStreamName": "stream",
                "logEvents": [
                    {"timestamp": 1_700_000_000_000i64, "message": messages[0]},
                    {"timestamp": 1_700_000_000_001i64, "message": messages[1]},
                ]
            })
        );
    }
}
