//! The exporter: translates each batch in order (deltas and budget carry over between
//! batches) and sends the rendered events.

use super::config::{AwsEmfExporterConfig, EmfVersion, OutputDestination};
use super::translate::{self, EmfSettings, Grouped};
use super::{budget, delta, fleet, send};
use crate::config::ComponentId;
use crate::exporters::ExportError;
use crate::pipeline::view::{ResourceMetricsView, read_metrics};
use crate::pipeline::{Payload, Signal};
use crate::telemetry::CardinalityReports;

pub struct AwsEmfExporter {
    id: String,
    settings: std::sync::Arc<EmfSettings>,
    deltas: delta::DeltaCache,
    budget: Option<budget::CardinalityBudget>,
    /// `None` writes EMF lines to stdout (`output_destination: stdout`).
    sender: Option<std::sync::Arc<send::LogsSender>>,
    /// Bytes of rendered events being sent, bounded by [`RENDERED_BYTES_IN_FLIGHT`].
    rendered_room: RenderedRoom,
    /// The fleet's store, when the budget is shared.
    store: Option<std::sync::Arc<fleet::FleetStore>>,
    /// Where the budget's `/cardinality` document is published.
    reports: CardinalityReports,
    /// The first step of translation ([`translate::group`]); a test puts a faulty one here.
    group: GroupStep,
}

/// Groups a batch's points by log event, taking deltas.
type GroupStep = for<'a> fn(
    &'a [ResourceMetricsView<'a>],
    &'a EmfSettings,
    &mut delta::DeltaCache,
    i64,
) -> Grouped<'a>;

/// Rendered events (their escaped JSON) being sent at once, over all batches. A batch gives
/// its queue item room back once translated (its decoded points are gone by then) and takes
/// this room for its events until they are sent: so the next batch is received and translated
/// while the previous one is on the wire, and memory stays bounded. The benchmark's points
/// render to about 600 bytes each, so an 8,192-point batch to about 5 MB: one batch on the wire
/// and the next translated, waiting.
pub const RENDERED_BYTES_IN_FLIGHT: usize = 8 << 20;

/// Room for rendered bytes in flight; a batch larger than the whole room takes all of it.
#[derive(Clone)]
pub struct RenderedRoom {
    free: std::sync::Arc<tokio::sync::Semaphore>,
    size: usize,
}

impl RenderedRoom {
    pub fn new(size: usize) -> Self {
        RenderedRoom {
            free: std::sync::Arc::new(tokio::sync::Semaphore::new(size)),
            size,
        }
    }

    /// Waits until `bytes` fit (this is the pushback: the exporter stops taking batches).
    pub async fn hold(&self, bytes: usize) -> tokio::sync::OwnedSemaphorePermit {
        let wanted = bytes.clamp(1, self.size.max(1)) as u32;
        self.free
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the rendered room is never closed")
    }
}

/// Renders a batch with a shared budget: once with what this sidecar knows; when points have
/// identities only the store can admit, the store is asked (one round trip for the batch) and
/// the batch is rendered again from the budget as it was, with the answers. When the store
/// cannot answer in time, new identities fold (the cap holds during an outage).
fn render_with_fleet(
    grouped: &translate::Grouped<'_>,
    settings: &EmfSettings,
    budget: &mut budget::CardinalityBudget,
    store: &std::sync::Arc<fleet::FleetStore>,
    runtime: &tokio::runtime::Handle,
) -> (Vec<translate::EmfEvent>, translate::TranslateStats) {
    if !store.askable() {
        // Backing off after a failure: new identities fold, and what is to report waits.
        budget.set_store_available(false);
        return translate::render(grouped, settings, Some(budget));
    }
    budget.set_store_available(true);
    let before = budget.clone();
    let first = translate::render(grouped, settings, Some(budget));
    let request = budget.take_request();
    if request.is_empty() {
        return first;
    }
    let answer = runtime.block_on(store.admit(&request));
    *budget = before;
    match answer {
        Ok((verdicts, fleet_admitted)) => budget.learn(&request, &verdicts, fleet_admitted),
        Err(_) => budget.set_store_available(false),
    }
    translate::render(grouped, settings, Some(budget))
}

/// Batches from this many points are translated on the blocking pool.
const BLOCKING_TRANSLATION_ITEMS: u64 = 512;

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl AwsEmfExporter {
    pub async fn new(
        id: &ComponentId,
        config: &AwsEmfExporterConfig,
        reports: CardinalityReports,
    ) -> Result<Self, ExportError> {
        let log_stream_name = if config.log_stream_name.is_empty() {
            // The collector picks `otel-stream-<random UUID>` at start.
            format!(
                "otel-stream-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            )
        } else {
            config.log_stream_name.clone()
        };
        let settings = EmfSettings {
            namespace: config.namespace.clone(),
            log_group_name: config.log_group_name.clone(),
            log_stream_name,
            rollup: config.dimension_rollup_option,
            descriptors: config
                .metric_descriptors
                .iter()
                .map(|d| (d.metric_name.clone(), (d.unit.clone(), d.overwrite)))
                .collect(),
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
            exclude_service_attributes: config
                .resource_to_telemetry_conversion
                .exclude_service_attributes,
            declarations: config.metric_declarations.clone(),
            version_zero: config.version == EmfVersion::Zero,
            detailed_metrics: config.detailed_metrics,
            json_encoded_labels: config.parse_json_encoded_attr_values.clone(),
            delta: delta::DeltaPolicy {
                started_at: unix_nanos(),
                retain_initial_value: config.retain_initial_value_of_delta_metric,
            },
        };
        let sender = if config.output_destination == OutputDestination::Stdout {
            None
        } else {
            Some(std::sync::Arc::new(
                send::LogsSender::new(
                    &id.to_string(),
                    &config.session,
                    &config.retry_on_failure,
                    config.log_retention,
                    &config.tags,
                )
                .await?,
            ))
        };
        let mut store = None;
        let budget = match config.cardinality_budget.clone() {
            Some(budget) => match &budget.shared {
                Some(shared) => {
                    let address = fleet::resolve_address(shared, |name| std::env::var(name).ok())
                        .map_err(ExportError::Setup)?;
                    let fleet_name = if shared.fleet.is_empty() {
                        format!("{}:{}", config.namespace, config.log_group_name)
                    } else {
                        shared.fleet.clone()
                    };
                    let fleet_store = std::sync::Arc::new(fleet::FleetStore::new(
                        address,
                        &shared.key_prefix,
                        &fleet_name,
                        *shared.timeout,
                        budget.limit(),
                        budget.max_metrics_per_name,
                        budget.on_exceed == budget::OnExceed::Fold,
                    ));
                    fleet_store.connect_in_background();
                    store = Some(fleet_store);
                    Some(budget::CardinalityBudget::shared(budget))
                }
                None => Some(budget::CardinalityBudget::new(budget)),
            },
            None => None,
        };
        Ok(AwsEmfExporter {
            id: id.to_string(),
            settings: std::sync::Arc::new(settings),
            deltas: delta::DeltaCache::default(),
            budget,
            sender,
            rendered_room: RenderedRoom::new(RENDERED_BYTES_IN_FLIGHT),
            group: translate::group,
            store,
            reports,
        })
    }

    /// Budget self-metrics and the `/cardinality` document.
    fn publish_budget(&self, budget: &budget::CardinalityBudget) {
        let labels = [("exporter", self.id.clone())];
        metrics::gauge!("otelsidecar_emf_budget_metrics", &labels).set(budget.limit() as f64);
        metrics::gauge!("otelsidecar_emf_budget_admitted_metrics", &labels)
            .set(budget.admitted() as f64);
        metrics::gauge!("otelsidecar_emf_budget_overflow_metrics", &labels)
            .set(budget.overflow_metrics() as f64);
        metrics::gauge!("otelsidecar_emf_budget_projected_monthly_cost_usd", &labels)
            .set(budget.projected_monthly_cost_usd());
        for (name, folded, dropped) in budget.overflow_counts() {
            let labels = [
                ("exporter", self.id.clone()),
                ("metric_name", name.to_string()),
            ];
            metrics::gauge!("otelsidecar_emf_budget_folded_points", &labels).set(folded as f64);
            metrics::gauge!("otelsidecar_emf_budget_dropped_points", &labels).set(dropped as f64);
        }
        if let Some(admitted) = budget.fleet_admitted() {
            metrics::gauge!("otelsidecar_emf_budget_fleet_admitted_metrics", &labels)
                .set(admitted as f64);
        }
        let fleet_name = self.store.as_ref().map(|s| s.fleet()).unwrap_or("");
        self.reports.publish(&self.id, budget.report(fleet_name));
    }

    /// Translates the payload now (the delta cache and budget need the batches in order) and
    /// returns the sending, to be awaited.
    pub async fn start(&mut self, payload: Payload) -> crate::exporters::InFlight {
        let items = payload.item_count() as u64;
        if payload.signal() != Signal::Metrics {
            return Box::pin(std::future::ready(Ok(())));
        }
        let now_ms = (unix_nanos() / 1_000_000) as i64;
        let settings = self.settings.clone();
        let mut deltas = std::mem::take(&mut self.deltas);
        let mut budget = self.budget.take();
        let store = self.store.clone();
        let runtime = tokio::runtime::Handle::current();
        let id = self.id.clone();
        let group = self.group;
        let translate = move || {
            // A panic costs this batch only; the delta cache and the budget come back either
            // way, so the exporter goes on with them (see `panic_policy`).
            let translated = crate::panic_policy::contain(&id, || {
                deltas.advance(now_ms);
                if let Some(budget) = budget.as_mut() {
                    budget.advance(now_ms);
                }
                // Views of the payload's bytes (or of its owned model, from receivers that
                // build one): the translation reads, it changes nothing.
                read_metrics(&payload, |views| {
                    let grouped = group(views, &settings, &mut deltas, now_ms);
                    match (&store, budget.as_mut()) {
                        (Some(store), Some(budget)) => {
                            render_with_fleet(&grouped, &settings, budget, store, &runtime)
                        }
                        _ => translate::render(&grouped, &settings, budget.as_mut()),
                    }
                })
                .unwrap_or_default()
            });
            (deltas, budget, translated, payload)
        };
        // A full batch takes tens of milliseconds to translate; on the blocking pool the runtime
        // keeps receiving and sending meanwhile (on one core the scheduler interleaves them).
        // With a shared budget the store is asked from there too.
        let inline = items < BLOCKING_TRANSLATION_ITEMS && self.store.is_none();
        let (deltas, budget, translated, payload) = if inline {
            translate()
        } else {
            tokio::task::spawn_blocking(translate)
                .await
                .expect("translation panics are contained inside the task")
        };
        // Freed on the runtime's thread, which decoded it: mimalloc takes its own blocks back
        // on a local free list, ready for the next requests, where frees from the blocking
        // pool's thread each go through an atomic list to be collected later.
        drop(payload);
        self.deltas = deltas;
        self.budget = budget;
        let Some((events, stats)) = translated else {
            return Box::pin(std::future::ready(Err(ExportError::Dropped {
                items,
                reason: crate::internal_events::DropReason::InternalError,
            })));
        };
        let labels = [("exporter", self.id.clone())];
        if let Some(budget) = &self.budget {
            self.publish_budget(budget);
        }
        metrics::counter!("otelsidecar_emf_points_skipped", &labels)
            .increment(stats.skipped_points);
        metrics::counter!("otelsidecar_emf_first_cumulative_points", &labels)
            .increment(stats.first_cumulative_points);
        metrics::counter!("otelsidecar_emf_dimension_sets_over_limit", &labels)
            .increment(stats.dimension_sets_over_limit);
        metrics::counter!("otelsidecar_emf_duplicate_points", &labels)
            .increment(stats.duplicate_points);
        metrics::gauge!("otelsidecar_emf_delta_series", &labels).set(self.deltas.len() as f64);
        metrics::counter!("otelsidecar_emf_events", &labels).increment(events.len() as u64);
        let Some(sender) = self.sender.clone() else {
            for event in &events {
                println!("{}", event.message());
            }
            return Box::pin(std::future::ready(Ok(())));
        };
        let rendered: usize = events.iter().map(|e| e.escaped.len()).sum();
        let held = self.rendered_room.hold(rendered).await;
        Box::pin(async move {
            let dropped = sender.send(events).await;
            drop(held);
            if dropped > 0 {
                return Err(ExportError::Counted {
                    items: dropped.min(items),
                });
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RenderedRoom;
    use crate::pipeline::Payload;
    use crate::pipeline::view::ResourceMetricsView;
    use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;

    /// A grouping step that panics on a metric named `test.panic`, as a bug in it would.
    fn faulty_group<'a>(
        batch: &'a [ResourceMetricsView<'a>],
        settings: &'a super::EmfSettings,
        deltas: &mut super::delta::DeltaCache,
        now_ms: i64,
    ) -> super::Grouped<'a> {
        let named = |name: &str| {
            batch
                .iter()
                .flat_map(|r| &r.scopes)
                .flat_map(|s| &s.metrics)
                .any(|m| m.name == name)
        };
        if named("test.panic") {
            panic!("injected fault");
        }
        super::translate::group(batch, settings, deltas, now_ms)
    }

    fn gauge_batch(name: &str, budget_labels: usize) -> Payload {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ScopeMetrics, metric::Data, number_data_point,
        };
        let points = (0..budget_labels)
            .map(|i| NumberDataPoint {
                attributes: vec![KeyValue {
                    key: "k".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(format!("v{i}"))),
                    }),
                    ..Default::default()
                }],
                time_unix_nano: 1,
                value: Some(number_data_point::Value::AsInt(1)),
                ..Default::default()
            })
            .collect();
        Payload::Metrics(vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    /// A panic while translating costs the batch (dropped, `internal_error`); the exporter, its
    /// budget and its health go on.
    #[tokio::test]
    async fn a_translation_panic_costs_one_batch() {
        crate::panic_policy::install_hook();
        let config: super::AwsEmfExporterConfig = serde_yaml_ng::from_str(
            "namespace: t\noutput_destination: stdout\ndimension_rollup_option: NoDimensionRollup\ncardinality_budget: {max_metrics: 10}",
        )
        .unwrap();
        let id = crate::config::ComponentId::parse("awsemf").unwrap();
        let mut exporter = super::AwsEmfExporter::new(&id, &config, Default::default())
            .await
            .unwrap();
        exporter.group = faulty_group;
        for size in [4, 600] {
            // Inline (small) and on the blocking pool (large).
            let result = exporter.start(gauge_batch("test.panic", size)).await.await;
            assert!(
                matches!(
                    result,
                    Err(crate::exporters::ExportError::Dropped {
                        reason: crate::internal_events::DropReason::InternalError,
                        ..
                    })
                ),
                "{result:?}"
            );
            assert!(exporter.budget.is_some(), "the budget survives");
        }
        assert!(exporter.start(gauge_batch("fine", 3)).await.await.is_ok());
        assert_eq!(exporter.budget.as_ref().unwrap().admitted(), 3 + 1);
        assert!(crate::panic_policy::healthy());
    }

    /// A batch's rendered events hold room until sent; the next batch waits for it, and one
    /// larger than the whole room takes all of it rather than waiting forever.
    #[tokio::test]
    async fn rendered_bytes_wait_for_room_until_earlier_ones_are_sent() {
        let room = RenderedRoom::new(100);
        let first = room.hold(60).await;
        let waiting = tokio::spawn({
            let room = room.clone();
            async move { room.hold(60).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "60 + 60 bytes do not fit in 100");
        drop(first);
        let second = waiting.await.unwrap();
        drop(second);
        let whole = room.hold(1_000).await;
        assert_eq!(room.free.available_permits(), 0);
        drop(whole);
        assert_eq!(room.free.available_permits(), 100);
    }
}
