//! Events rendered straight into the PutLogEvents body's escaped JSON: fields in key order as
//! the collector's sorted maps write them, the `_aws` directives, values and statistic sets.
//!
//! Where the dimension sets follow from the label keys alone (no declarations, no budget) and
//! no label is JSON-encoded, the events of a batch come in few shapes: the same label keys,
//! metric names, units and target. The first event of a shape is recorded as an [`EventPlan`]
//! (the bytes all of them share and where each one's own values go), and the others copy those
//! bytes and write only their label values, metric values and timestamp.

use super::*;

impl EmfValue {
    /// Appends the value's JSON (keys in the order serde_json's sorted maps wrote them).
    pub(super) fn write_json(&self, w: &mut impl EventOut) {
        match self {
            EmfValue::Number(v) => w.value(v),
            EmfValue::Statistics {
                max,
                min,
                count,
                sum,
            } => write_statistics(w, *count, *max, *min, *sum, None),
            EmfValue::Distribution {
                values,
                counts,
                max,
                min,
                count,
                sum,
            } => write_statistics(w, *count, *max, *min, *sum, Some((values, counts))),
        }
    }
}

/// `{"Count":…,["Counts":…,]"Max":…,"Min":…,"Sum":…[,"Values":…]}`: keys in sorted order.
pub(super) fn write_statistics(
    w: &mut impl EventOut,
    count: u64,
    max: f64,
    min: f64,
    sum: f64,
    distribution: Option<(&[f64], &[f64])>,
) {
    w.structure("{\"Count\":");
    w.value(&count);
    if let Some((_, counts)) = distribution {
        w.structure(",\"Counts\":");
        w.value(counts);
    }
    w.structure(",\"Max\":");
    w.value(&max);
    w.structure(",\"Min\":");
    w.value(&min);
    w.structure(",\"Sum\":");
    w.value(&sum);
    if let Some((values, _)) = distribution {
        w.structure(",\"Values\":");
        w.value(values);
    }
    w.byte(b'}');
}

/// CloudWatch Logs' limit on one event, less the 26 bytes it adds.
pub const MAX_EVENT_BYTES: usize = 256 * 1024 - 26;

/// An event rendered into the batch's buffer.
pub(super) struct Rendered {
    pub(super) target: usize,
    pub(super) timestamp_ms: i64,
    pub(super) range: std::ops::Range<usize>,
    pub(super) size: usize,
}

/// A top-level field of an event, written in key order as the collector's sorted maps are.
pub(super) enum Field<'r> {
    /// Text of our own (the version, the overflow flag).
    Text(&'r str),
    /// The value of label `.0`.
    Label(usize, &'r str),
    Decoded(Value),
    /// The value of metric `.0`.
    Metric(usize, &'r EmfValue),
    Aws,
    Directives,
    TimestampText,
}

/// Renders a batch's groups into one buffer of escaped events, with what every event needs:
/// the settings, the budget that admits its metrics, the dimension sets cached per key list, the
/// plans of the event shapes met so far.
pub(super) struct Renderer<'s, 'b> {
    settings: &'s EmfSettings,
    budget: Option<&'b mut CardinalityBudget>,
    stats: &'b mut TranslateStats,
    cache: DimensionsCache,
    plans: PlanCache,
    buffer: Vec<u8>,
    rendered: Vec<Rendered>,
}

impl<'s, 'b> Renderer<'s, 'b> {
    pub(super) fn new(
        settings: &'s EmfSettings,
        budget: Option<&'b mut CardinalityBudget>,
        stats: &'b mut TranslateStats,
        groups: usize,
    ) -> Self {
        Renderer {
            settings,
            budget,
            stats,
            cache: DimensionsCache::default(),
            plans: PlanCache::default(),
            // About what an event takes; growing a multi-megabyte buffer by copying showed in
            // profiles.
            buffer: Vec::with_capacity(groups * 1024),
            rendered: Vec::with_capacity(groups),
        }
    }

    /// One group's event, or several when it is over CloudWatch's event limit: split by
    /// metrics rather than truncated into invalid JSON.
    pub(super) fn events(
        &mut self,
        target_index: usize,
        target: &Target,
        key: &GroupKey<'_>,
        metrics: &[GroupedMetric<'_>],
    ) {
        let start = self.buffer.len();
        let added = self.render(target_index, target, key, metrics);
        let size = self.buffer.len() - start - added;
        if size <= MAX_EVENT_BYTES || metrics.len() == 1 {
            self.rendered.push(Rendered {
                target: target_index,
                timestamp_ms: key.timestamp_ms,
                range: start..self.buffer.len(),
                size,
            });
            return;
        }
        self.buffer.truncate(start);
        let (first, second) = metrics.split_at(metrics.len() / 2);
        for half in [first, second] {
            self.events(target_index, target, key, half);
        }
    }

    /// The batch's events, slices of one buffer.
    pub(super) fn finish(self, targets: &[Target]) -> Vec<EmfEvent> {
        let buffer = Bytes::from(self.buffer);
        self.rendered
            .into_iter()
            .map(|r| EmfEvent {
                log_group: targets[r.target].log_group.clone(),
                log_stream: targets[r.target].log_stream.clone(),
                timestamp_ms: r.timestamp_ms,
                escaped: buffer.slice(r.range),
                size: r.size,
            })
            .collect()
    }

    /// Appends one event's escaped JSON to the buffer; returns the bytes the escaping added.
    fn render(
        &mut self,
        target_index: usize,
        target: &Target,
        key: &GroupKey<'_>,
        metrics: &[GroupedMetric<'_>],
    ) -> usize {
        let settings = self.settings;
        // The sets depend on the label keys alone: rendered once per key list.
        let keys_decide = settings.declarations.is_empty() && self.budget.is_none();
        if keys_decide && settings.json_encoded_labels.is_empty() {
            return self.render_planned(target_index, target, key, metrics);
        }
        let Renderer {
            budget,
            stats,
            cache,
            buffer,
            ..
        } = self;
        let namespace = target.namespace.as_str();
        let mut folded = false;
        // Metrics sharing the same dimension sets (rendered) share directives.
        let mut by_sets: Vec<Directive> = Vec::new();
        if keys_decide {
            let dimensions = cache.get(&key.labels, settings.rollup);
            stats.dimension_sets_over_limit += dimensions.over_limit * metrics.len() as u64;
            by_sets.extend(keys_directive(dimensions, metrics));
        }
        for metric in metrics.iter().filter(|_| !keys_decide) {
            // No declaration covers the metric, or none leaves it a dimension set: it is not
            // extracted (nor counted against the budget); its value stays a field of the event.
            let Some(mut sets) = metric_dimension_sets(&metric.name, &key.labels, settings, stats)
                .filter(|sets| !sets.is_empty())
            else {
                continue;
            };
            if let Some(budget) = budget.as_deref_mut() {
                let identities: Vec<u64> = sets
                    .iter()
                    .map(|set| {
                        budget
                            .hasher()
                            .identity(namespace, &metric.name, set, &key.labels)
                    })
                    .collect();
                match budget.admit(namespace, &metric.name, &identities, &key.labels) {
                    Admission::Admitted => {}
                    Admission::Folded => {
                        folded = true;
                        sets = vec![vec![OVERFLOW_KEY]];
                        stats.folded_points += 1;
                    }
                    Admission::Dropped => {
                        stats.dropped_points += 1;
                        continue;
                    }
                }
            }
            let (rendered, added) = render_dimensions(&sets);
            match by_sets.iter_mut().find(|d| *d.dimensions == *rendered) {
                Some(directive) => directive.members.push(metric),
                None => by_sets.push(Directive {
                    dimensions: Cow::Owned(rendered),
                    added,
                    members: vec![metric],
                }),
            }
        }
        let w = &mut EventWriter {
            out: buffer,
            added: 0,
        };
        write_event(w, settings, namespace, key, metrics, &by_sets, folded);
        w.added
    }

    /// [`Self::render`] through the plan of the event's shape, recorded from its first event.
    fn render_planned(
        &mut self,
        target_index: usize,
        target: &Target,
        key: &GroupKey<'_>,
        metrics: &[GroupedMetric<'_>],
    ) -> usize {
        let Renderer {
            settings,
            stats,
            cache,
            plans,
            buffer,
            ..
        } = self;
        let plan = plans.get_or_record(target_index, key, metrics, || {
            let dimensions = cache.get(&key.labels, settings.rollup);
            let by_sets: Vec<Directive> = keys_directive(dimensions, metrics).into_iter().collect();
            let mut recorder = PlanRecorder::default();
            write_event(
                &mut recorder,
                settings,
                &target.namespace,
                key,
                metrics,
                &by_sets,
                false,
            );
            recorder.finish(dimensions.over_limit)
        });
        stats.dimension_sets_over_limit += plan.over_limit * metrics.len() as u64;
        let w = &mut EventWriter {
            out: buffer,
            added: 0,
        };
        plan.write(w, key, metrics);
        w.added
    }
}

/// The one directive of an event whose dimension sets follow from its label keys.
fn keys_directive<'r>(
    dimensions: &'r CachedDimensions,
    metrics: &'r [GroupedMetric<'r>],
) -> Option<Directive<'r>> {
    (!metrics.is_empty()).then(|| Directive {
        dimensions: Cow::Borrowed(&dimensions.escaped),
        added: dimensions.added,
        members: metrics.iter().collect(),
    })
}

/// Writes an event: its fields in key order, as a map would receive them (of two fields with
/// one name, the later), and the directives when any metric is extracted.
fn write_event(
    out: &mut impl EventOut,
    settings: &EmfSettings,
    namespace: &str,
    key: &GroupKey<'_>,
    metrics: &[GroupedMetric<'_>],
    by_sets: &[Directive],
    folded: bool,
) {
    let mut fields: Vec<(&str, Field)> = Vec::with_capacity(key.labels.len() + metrics.len() + 3);
    for (i, (k, v)) in key.labels.iter().enumerate() {
        let field = if settings.json_encoded_labels.iter().any(|l| l == k) {
            serde_json::from_str(v)
                .map(Field::Decoded)
                .unwrap_or(Field::Label(i, v))
        } else {
            Field::Label(i, v)
        };
        fields.push((k, field));
    }
    for (i, m) in metrics.iter().enumerate() {
        fields.push((&m.name, Field::Metric(i, &m.value)));
    }
    if folded {
        fields.push((OVERFLOW_KEY, Field::Text("true")));
    }
    let extracted = !by_sets.is_empty();
    // Without directives no declaration covers any metric here: the values stay queryable in
    // CloudWatch Logs, but nothing is extracted (and billed) as a metric.
    if extracted && settings.version_zero {
        fields.push(("Version", Field::Text("0")));
        fields.push(("CloudWatchMetrics", Field::Directives));
        fields.push(("Timestamp", Field::TimestampText));
    } else if extracted {
        fields.push(("Version", Field::Text("1")));
        fields.push(("_aws", Field::Aws));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    out.byte(b'{');
    let mut first = true;
    for (i, (name, field)) in fields.iter().enumerate() {
        if fields.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !first {
            out.byte(b',');
        }
        first = false;
        out.text(name);
        out.byte(b':');
        match field {
            Field::Text(text) => out.text(text),
            Field::Label(i, text) => out.label_value(*i, text),
            Field::Decoded(value) => out.value(value),
            Field::Metric(i, value) => out.metric_value(*i, value),
            Field::Directives => write_directives(out, namespace, by_sets),
            Field::TimestampText => out.timestamp(key.timestamp_ms, true),
            Field::Aws => {
                out.structure("{\"CloudWatchMetrics\":");
                write_directives(out, namespace, by_sets);
                out.structure(",\"Timestamp\":");
                out.timestamp(key.timestamp_ms, false);
                out.byte(b'}');
            }
        }
    }
    out.byte(b'}');
}

/// Metrics sharing one list of dimension sets (rendered, escaped).
pub(super) struct Directive<'r> {
    pub(super) dimensions: Cow<'r, [u8]>,
    pub(super) added: usize,
    pub(super) members: Vec<&'r GroupedMetric<'r>>,
}

/// `[{"Dimensions":[…],"Metrics":[{"Name":…,"StorageResolution":…,"Unit":…}],"Namespace":…}]`
pub(super) fn write_directives(w: &mut impl EventOut, namespace: &str, by_sets: &[Directive]) {
    w.byte(b'[');
    let mut first = true;
    for directive in by_sets {
        for chunk in directive.members.chunks(MAX_METRICS_PER_DIRECTIVE) {
            if !first {
                w.byte(b',');
            }
            first = false;
            w.structure("{\"Dimensions\":");
            w.escaped(&directive.dimensions, directive.added);
            w.structure(",\"Metrics\":[");
            for (i, m) in chunk.iter().enumerate() {
                if i > 0 {
                    w.byte(b',');
                }
                w.structure("{\"Name\":");
                w.text(&m.name);
                w.structure(",\"StorageResolution\":");
                w.value(&m.storage_resolution);
                w.structure(",\"Unit\":");
                w.text(&m.unit);
                w.byte(b'}');
            }
            w.structure("],\"Namespace\":");
            w.text(namespace);
            w.byte(b'}');
        }
    }
    w.byte(b']');
}
