//! The sending loop of both hot calls. Units of work (at most 50 X-Ray documents, one
//! PutLogEvents batch) go out with at most `num_workers` calls in flight; each is retried with
//! the exporter's `retry_on_failure` backoff while AWS says it may pass later, and given up,
//! counted by reason, when refused for good or out of time. The exporters only build their
//! requests and read the answers.

use super::RetrySettings;
use crate::internal_events::DropReason;
use std::fmt::Display;
use std::future::Future;
use tokio::time::Instant;

/// What one call made of its unit of work. `refused` counts items AWS refused for good in an
/// answer that was otherwise taken (unprocessed segments, rejected events), already reported
/// by the exporter that read the answer.
pub enum Answer<W> {
    /// Nothing left to send.
    Done { refused: u64 },
    /// `rest` may pass later: the whole unit, or the part the answer said to send again;
    /// after `retry_after` when the answer said how long to wait (`Retry-After`), else after
    /// the exporter's backoff.
    Again {
        rest: W,
        refused: u64,
        error: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The whole unit was refused for good.
    Failed { items: u64, error: String },
}

/// How many items a unit of work holds, for the drop counts.
pub trait Unit {
    fn items(&self) -> u64;
}

impl<T> Unit for Vec<T> {
    fn items(&self) -> u64 {
        self.len() as u64
    }
}

/// Reports items that never reached AWS (each exporter has its own counter and log line).
pub type ReportDropped = fn(exporter: &str, reason: DropReason, items: u64, error: &dyn Display);

/// One exporter's retry loop.
pub struct Retrying<'a> {
    /// The AWS call, for the log line.
    pub call: &'static str,
    pub exporter: &'a str,
    pub settings: &'a RetrySettings,
    pub report_dropped: ReportDropped,
}

impl Retrying<'_> {
    /// Sends `unit` through `call` until nothing is left, it is refused for good, or
    /// `max_elapsed_time` has passed; returns how many of its items were dropped.
    pub async fn send<W, C, F>(&self, mut unit: W, mut call: C) -> u64
    where
        W: Unit,
        C: FnMut(W) -> F,
        F: Future<Output = Answer<W>>,
    {
        let started = Instant::now();
        let mut dropped = 0;
        let mut attempt = 0;
        loop {
            match call(unit).await {
                Answer::Done { refused } => return dropped + refused,
                Answer::Failed { items, error } => {
                    (self.report_dropped)(self.exporter, DropReason::PermanentError, items, &error);
                    return dropped + items;
                }
                Answer::Again {
                    rest,
                    refused,
                    error,
                    retry_after,
                } => {
                    dropped += refused;
                    let items = rest.items();
                    if items == 0 {
                        return dropped;
                    }
                    let budget = self.settings.max_elapsed_time;
                    if !self.settings.enabled || (!budget.is_zero() && started.elapsed() >= *budget)
                    {
                        (self.report_dropped)(
                            self.exporter,
                            DropReason::RetriesExhausted,
                            items,
                            &error,
                        );
                        return dropped + items;
                    }
                    let wait = retry_after.unwrap_or_else(|| self.settings.backoff(attempt));
                    tracing::warn!(exporter = %self.exporter, %error, items, wait = ?wait, "{} will be retried", self.call);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    unit = rest;
                }
            }
        }
    }
}

/// Runs `send` on every unit as its own task, at most `in_flight` at once; returns the sum of
/// what they dropped.
pub async fn send_all<W, S, F>(units: impl IntoIterator<Item = W>, in_flight: usize, send: S) -> u64
where
    S: Fn(W) -> F,
    F: Future<Output = u64> + Send + 'static,
{
    // A call that panicked hands its panic on, unchanged, to the export that sent it: the
    // panic policy (`Contained` around each export) decides what it costs.
    let outcome = |done: Result<u64, tokio::task::JoinError>| match done {
        Ok(dropped) => dropped,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => 0,
    };
    let mut calls = tokio::task::JoinSet::new();
    let mut dropped = 0;
    for unit in units {
        if calls.len() >= in_flight.max(1) {
            dropped += calls.join_next().await.map_or(0, outcome);
        }
        calls.spawn(send(unit));
    }
    while let Some(done) = calls.join_next().await {
        dropped += outcome(done);
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// What every test reported, by exporter name (tests run in parallel).
    static REPORTS: Mutex<Vec<(String, DropReason, u64)>> = Mutex::new(Vec::new());

    fn record(exporter: &str, reason: DropReason, items: u64, _error: &dyn Display) {
        REPORTS
            .lock()
            .unwrap()
            .push((exporter.to_string(), reason, items));
    }

    fn settings(max_elapsed: Duration) -> RetrySettings {
        RetrySettings {
            initial_interval: crate::config::duration::GoDuration::from_secs(1),
            max_interval: crate::config::duration::GoDuration::from_secs(1),
            max_elapsed_time: max_elapsed.into(),
            ..RetrySettings::default()
        }
    }

    fn retrying(settings: &RetrySettings, exporter: &'static str) -> Retrying<'static> {
        Retrying {
            call: "TestCall",
            exporter,
            settings: Box::leak(Box::new(settings.clone())),
            report_dropped: record,
        }
    }

    fn reports_of(exporter: &str) -> Vec<(DropReason, u64)> {
        REPORTS
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, ..)| name == exporter)
            .map(|(_, reason, items)| (*reason, *items))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_sent_again_shrinks_to_what_the_answer_says() {
        // First answer: 3 of 10 refused for good, 2 to send again; second: done.
        let calls = AtomicUsize::new(0);
        let dropped = retrying(&settings(Duration::from_secs(60)), "shrinks")
            .send((0..10).collect::<Vec<u32>>(), |unit| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 => Answer::Again {
                            rest: unit[..2].to_vec(),
                            refused: 3,
                            error: "throttled".into(),
                            retry_after: None,
                        },
                        _ => {
                            assert_eq!(unit, vec![0, 1], "only the rest is sent again");
                            Answer::Done { refused: 0 }
                        }
                    }
                }
            })
            .await;
        assert_eq!(dropped, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            reports_of("shrinks"),
            vec![],
            "refusals are the caller's to report"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_unit_still_failing_when_time_runs_out_is_dropped_as_exhausted() {
        let calls = AtomicUsize::new(0);
        let dropped = retrying(&settings(Duration::from_secs(10)), "exhausted")
            .send(vec![0u8; 17], |unit| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    Answer::Again {
                        rest: unit,
                        refused: 0,
                        error: "503".into(),
                        retry_after: None,
                    }
                }
            })
            .await;
        assert_eq!(dropped, 17);
        // One-second waits (jittered ±50 %) fill ten seconds in more than a handful of calls.
        assert!(calls.load(Ordering::SeqCst) > 5);
        assert_eq!(
            reports_of("exhausted"),
            vec![(DropReason::RetriesExhausted, 17)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_refusal_is_not_retried() {
        let calls = AtomicUsize::new(0);
        let dropped = retrying(&settings(Duration::from_secs(60)), "permanent")
            .send(vec![0u8; 23], |unit| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    Answer::Failed {
                        items: unit.len() as u64,
                        error: "AccessDenied".into(),
                    }
                }
            })
            .await;
        assert_eq!((dropped, calls.load(Ordering::SeqCst)), (23, 1));
        assert_eq!(
            reports_of("permanent"),
            vec![(DropReason::PermanentError, 23)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_retries_off_the_first_failure_drops_the_unit() {
        let off = RetrySettings {
            enabled: false,
            ..settings(Duration::from_secs(60))
        };
        let dropped = retrying(&off, "off")
            .send(vec![0u8; 29], |unit| async move {
                Answer::Again {
                    rest: unit,
                    refused: 0,
                    error: "503".into(),
                    retry_after: None,
                }
            })
            .await;
        assert_eq!(dropped, 29);
        assert_eq!(reports_of("off"), vec![(DropReason::RetriesExhausted, 29)]);
    }

    #[tokio::test]
    async fn no_more_than_in_flight_units_are_sent_at_once() {
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        let dropped = send_all(0..40u64, 3, |unit| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                unit % 2
            }
        })
        .await;
        assert_eq!(dropped, 20, "the sum of what each unit dropped");
        assert!(most.load(Ordering::SeqCst) <= 3);
    }
}
