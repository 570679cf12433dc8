//! The `batch` processor, with the collector's semantics: a size trigger (`send_batch_size`), a
//! timer (`timeout`, reset after every send), an optional cap per sent batch
//! (`send_batch_max_size`), and a full flush when the pipeline closes.

use crate::config::{ComponentSection, InvalidSetting, duration::GoDuration};
use crate::pipeline::{Delivery, Payload, Signal};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `processors.batch` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSection {
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    #[serde(default = "default_send_batch_size")]
    pub send_batch_size: usize,
    /// 0 means no cap.
    #[serde(default)]
    pub send_batch_max_size: usize,
    #[serde(default)]
    pub metadata_keys: Vec<String>,
    #[serde(default = "default_metadata_cardinality_limit")]
    pub metadata_cardinality_limit: u32,
}

fn default_timeout() -> GoDuration {
    GoDuration::from_millis(200)
}
fn default_send_batch_size() -> usize {
    8192
}
fn default_metadata_cardinality_limit() -> u32 {
    1000
}

/// A validated `batch` processor: what it runs with, and what `validate --print` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchConfig {
    pub timeout: GoDuration,
    pub send_batch_size: usize,
    /// 0 means no cap.
    pub send_batch_max_size: usize,
}

impl ComponentSection for BatchSection {
    type Settings = BatchConfig;

    /// The collector's checks.
    fn validate(self) -> Result<BatchConfig, Vec<InvalidSetting>> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(vec![InvalidSetting::collector(
                "send_batch_max_size",
                self.send_batch_max_size.to_string(),
                &format!(
                    "send_batch_max_size must be greater or equal to send_batch_size ({})",
                    self.send_batch_size
                ),
            )]);
        }
        if !self.metadata_keys.is_empty() {
            return Err(vec![InvalidSetting::new(
                "metadata_keys",
                &self.metadata_keys,
                "none: batching by client metadata is not supported by otel-sidecar",
            )]);
        }
        Ok(BatchConfig {
            timeout: self.timeout,
            send_batch_size: self.send_batch_size,
            send_batch_max_size: self.send_batch_max_size,
        })
    }
}

/// Why a batch was sent, for the collector's trigger counters.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Size,
    Timeout,
    Shutdown,
}

/// When a batch started at `now` leaves on timeout: on the tick the collector's free-running
/// timer (reset after every send, then every `timeout`) would reach next, so batches leave
/// when they would in the collector without a timer waking an idle processor.
fn next_tick(deadline: Instant, timeout: Duration, now: Instant) -> Instant {
    if deadline > now || timeout.is_zero() {
        return deadline;
    }
    let behind = (now - deadline).as_nanos();
    let ticks = behind / timeout.as_nanos() + 1;
    deadline + Duration::from_nanos(u64::try_from(ticks * timeout.as_nanos()).unwrap_or(u64::MAX))
}

/// One running batch processor instance (one per pipeline that lists it).
pub struct BatchProcessor {
    id: String,
    config: BatchConfig,
    pending: Payload,
    pending_items: usize,
}

impl BatchProcessor {
    pub fn new(id: String, config: BatchConfig, signal: Signal) -> Self {
        BatchProcessor {
            id,
            config,
            pending: Payload::empty(signal),
            pending_items: 0,
        }
    }

    fn timer_enabled(&self) -> bool {
        !self.config.timeout.is_zero() && self.config.send_batch_size > 0
    }

    /// Runs until `input` closes, then flushes everything pending. Like the collector's batch
    /// processor, it answers for what it absorbs: a request's receipt is released here, so data
    /// it holds is in memory only, even in front of a persistent exporter queue.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Delivery>,
        output: mpsc::Sender<Delivery>,
    ) {
        let mut deadline = Instant::now() + *self.config.timeout;
        loop {
            tokio::select! {
                biased;
                received = input.recv() => {
                    let Some(Delivery { payload, .. }) = received else { break };
                    let items = payload.item_count();
                    if items == 0 {
                        continue;
                    }
                    if self.pending_items == 0 {
                        deadline = next_tick(deadline, *self.config.timeout, Instant::now());
                    }
                    self.pending.append(payload);
                    self.pending_items += items;
                    while self.pending_items > 0
                        && (!self.timer_enabled() || self.pending_items >= self.config.send_batch_size)
                    {
                        self.send_one(Trigger::Size, &output).await;
                        deadline = Instant::now() + *self.config.timeout;
                    }
                }
                // Armed only while a batch is pending: an idle sidecar has no timer to wake it.
                _ = tokio::time::sleep_until(deadline), if self.timer_enabled() && self.pending_items > 0 => {
                    self.send_one(Trigger::Timeout, &output).await;
                    deadline = Instant::now() + *self.config.timeout;
                }
            }
        }
        while self.pending_items > 0 {
            self.send_one(Trigger::Shutdown, &output).await;
        }
    }

    /// Sends everything pending, or `send_batch_max_size` items of it when a cap is set.
    async fn send_one(&mut self, trigger: Trigger, output: &mpsc::Sender<Delivery>) {
        let max = self.config.send_batch_max_size;
        let batch = if max > 0 && self.pending_items > max {
            self.pending_items -= max;
            self.pending.split_off_front(max)
        } else {
            self.pending_items = 0;
            let signal = self.pending.signal();
            std::mem::replace(&mut self.pending, Payload::empty(signal))
        };
        let size = batch.item_count();
        let labels = [("processor", self.id.clone())];
        metrics::histogram!("otelcol_processor_batch_batch_send_size", &labels).record(size as f64);
        match trigger {
            Trigger::Size => {
                metrics::counter!("otelcol_processor_batch_batch_size_trigger_send", &labels)
                    .increment(1)
            }
            Trigger::Timeout => {
                metrics::counter!("otelcol_processor_batch_timeout_trigger_send", &labels)
                    .increment(1)
            }
            Trigger::Shutdown => {}
        }
        if output.send(Delivery::new(batch)).await.is_err() {
            tracing::error!(processor = %self.id, items = size, "next stage closed; batch lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::test_spans as spans;

    fn section(yaml: &str) -> BatchSection {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn config(yaml: &str) -> BatchConfig {
        section(yaml).validate().unwrap()
    }

    /// The processor between two plain payload queues.
    fn start(cfg: BatchConfig) -> (mpsc::Sender<Payload>, mpsc::Receiver<Payload>) {
        let (in_tx, mut in_rx) = mpsc::channel(1024);
        let (delivery_tx, delivery_rx) = mpsc::channel(1);
        let (batch_tx, mut batch_rx) = mpsc::channel(1);
        let (out_tx, out_rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(payload) = in_rx.recv().await {
                delivery_tx.send(Delivery::new(payload)).await.unwrap();
            }
        });
        tokio::spawn(
            BatchProcessor::new("batch".into(), cfg, Signal::Traces).run(delivery_rx, batch_tx),
        );
        tokio::spawn(async move {
            while let Some(Delivery { payload, .. }) = batch_rx.recv().await {
                out_tx.send(payload).await.unwrap();
            }
        });
        (in_tx, out_rx)
    }

    #[test]
    fn defaults_match_the_collector() {
        let c = config("{}");
        assert_eq!(*c.timeout, Duration::from_millis(200));
        assert_eq!(c.send_batch_size, 8192);
        assert_eq!(c.send_batch_max_size, 0);
        let bad = section("send_batch_size: 100\nsend_batch_max_size: 99");
        assert!(
            bad.validate().unwrap_err()[0]
                .expected
                .contains("greater or equal")
        );
        assert!(
            section("send_batch_size: 100\nsend_batch_max_size: 100")
                .validate()
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn size_then_timeout_trigger() {
        let (tx, mut rx) = start(config("send_batch_size: 50\ntimeout: 1s"));
        let started = Instant::now();
        for _ in 0..120 {
            tx.send(spans(1)).await.unwrap();
        }
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!((first.item_count(), second.item_count()), (50, 50));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "size trigger must not wait"
        );
        let third = rx.recv().await.unwrap();
        assert_eq!(third.item_count(), 20);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "the remainder leaves only when the timer fires"
        );
        drop(tx);
        assert!(rx.recv().await.is_none(), "nothing else was pending");
    }

    #[test]
    fn an_idle_timer_keeps_the_collectors_tick_phase() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Still ahead: unchanged. Behind: the next tick of the free-running timer.
        assert_eq!(next_tick(at(1000), second, at(400)), at(1000));
        assert_eq!(next_tick(at(1000), second, at(1000)), at(2000));
        assert_eq!(next_tick(at(1000), second, at(3500)), at(4000));
        assert_eq!(next_tick(at(1000), second, at(3999)), at(4000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_processor_is_never_woken_and_a_late_batch_leaves_on_the_next_tick() {
        use crate::test_support::{Counted, polls};
        let (input, delivery_rx) = mpsc::channel(8);
        let (batch_tx, mut output) = mpsc::channel(8);
        let processor = BatchProcessor::new(
            "batch".into(),
            config("send_batch_size: 50\ntimeout: 1s"),
            Signal::Traces,
        );
        let (counted, polled) = Counted::new(processor.run(delivery_rx, batch_tx));
        tokio::spawn(counted);
        let started = Instant::now();
        tokio::task::yield_now().await;
        let before = polls(&polled);
        // Idle across three timeouts: the collector's timer would have fired three times.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(polls(&polled), before, "an idle processor was woken");
        input.send(Delivery::new(spans(1))).await.unwrap();
        let Delivery { payload, .. } = output.recv().await.unwrap();
        assert_eq!(payload.item_count(), 1);
        let left = started.elapsed();
        assert!(
            left >= Duration::from_secs(4) && left < Duration::from_millis(4100),
            "left at {left:?}, not on the collector's 4 s tick"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_size_splits_large_requests() {
        let (tx, mut rx) = start(config(
            "send_batch_size: 50\nsend_batch_max_size: 60\ntimeout: 10s",
        ));
        tx.send(spans(130)).await.unwrap();
        let sizes: Vec<usize> = [rx.recv().await.unwrap(), rx.recv().await.unwrap()]
            .iter()
            .map(Payload::item_count)
            .collect();
        assert_eq!(
            sizes,
            vec![60, 60],
            "size trigger sends capped batches while >= 50 pending"
        );
        drop(tx);
        assert_eq!(
            rx.recv().await.unwrap().item_count(),
            10,
            "flushed on close"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_cap_a_large_request_leaves_whole() {
        let (tx, mut rx) = start(config("send_batch_size: 50\ntimeout: 10s"));
        tx.send(spans(130)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().item_count(), 130);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_sends_every_item_at_once() {
        let (tx, mut rx) = start(config("timeout: 0s"));
        tx.send(spans(3)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().item_count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_everything_pending() {
        let (tx, mut rx) = start(config("send_batch_size: 5000\ntimeout: 60s"));
        for _ in 0..10 {
            tx.send(spans(100)).await.unwrap();
        }
        drop(tx);
        let started = Instant::now();
        assert_eq!(rx.recv().await.unwrap().item_count(), 1000);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flush does not wait for the timer"
        );
        assert!(rx.recv().await.is_none());
    }
}
