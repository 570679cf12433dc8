//! Where an event's JSON goes: written at once into the PutLogEvents body ([`EventWriter`]),
//! or recorded once per event shape as an [`EventPlan`] that later events of that shape copy,
//! filling in only their own values ([`PlanRecorder`], [`PlanCache`]).

use super::*;

/// Writes an event's JSON escaped for embedding in the PutLogEvents body (see
/// [`embedded_json`]), counting the bytes the escaping adds to know the event's own size.
pub(super) struct EventWriter<'o> {
    pub(super) out: &'o mut Vec<u8>,
    pub(super) added: usize,
}

/// Where an event's JSON goes: written at once ([`EventWriter`]), or recorded as an
/// [`EventPlan`] ([`PlanRecorder`]). The event's own values (label values, metric values, the
/// timestamp) go through their own methods, which a recorder keeps as places to fill.
pub(super) trait EventOut {
    /// Keys and punctuation we write ourselves.
    fn structure(&mut self, text: &str);
    /// A value's JSON (strings escaped, non-finite numbers as `null`).
    fn value<T: serde::Serialize + ?Sized>(&mut self, value: &T);
    /// A string value (the common case of [`Self::value`], without a serializer).
    fn text(&mut self, text: &str);
    fn byte(&mut self, byte: u8);
    /// JSON already escaped, with the bytes its escaping added.
    fn escaped(&mut self, bytes: &[u8], added: usize);
    /// The value of the event's label `index` (in key order).
    fn label_value(&mut self, index: usize, text: &str);
    /// The value of the event's metric `index`.
    fn metric_value(&mut self, index: usize, value: &EmfValue);
    /// The event's timestamp, as a number or (version 0) as a string.
    fn timestamp(&mut self, timestamp_ms: i64, as_text: bool);
}

impl EventOut for EventWriter<'_> {
    fn structure(&mut self, text: &str) {
        self.added += embedded_json::write_structure(self.out, text);
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        self.added += embedded_json::write(self.out, value);
    }

    fn text(&mut self, text: &str) {
        self.added += embedded_json::write_str(self.out, text);
    }

    fn byte(&mut self, byte: u8) {
        self.out.push(byte);
    }

    fn escaped(&mut self, bytes: &[u8], added: usize) {
        self.out.extend_from_slice(bytes);
        self.added += added;
    }

    fn label_value(&mut self, _: usize, text: &str) {
        self.text(text);
    }

    fn metric_value(&mut self, _: usize, value: &EmfValue) {
        value.write_json(self);
    }

    fn timestamp(&mut self, timestamp_ms: i64, as_text: bool) {
        if as_text {
            self.value(&timestamp_ms.to_string());
        } else {
            self.value(&timestamp_ms);
        }
    }
}

/// One step of an [`EventPlan`].
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Bytes of the plan's shared text.
    Shared(std::ops::Range<usize>),
    Label(usize),
    Metric(usize),
    Timestamp {
        as_text: bool,
    },
}

/// An event shape's JSON: the escaped bytes every event of the shape shares, and the places of
/// each event's own values.
#[derive(Debug, Default)]
pub(super) struct EventPlan {
    shared: Vec<u8>,
    /// Bytes the escaping added to the shared text.
    added: usize,
    steps: Vec<Step>,
    /// Dimension sets left out for holding over [`MAX_DIMENSIONS_PER_SET`] keys, per metric.
    pub(super) over_limit: u64,
}

impl EventPlan {
    /// Writes one event of the plan's shape.
    pub(super) fn write(
        &self,
        w: &mut EventWriter,
        key: &GroupKey<'_>,
        metrics: &[GroupedMetric<'_>],
    ) {
        w.added += self.added;
        for step in &self.steps {
            match step {
                Step::Shared(range) => w.out.extend_from_slice(&self.shared[range.clone()]),
                Step::Label(i) => w.text(&key.labels.pairs()[*i].1),
                Step::Metric(i) => metrics[*i].value.write_json(w),
                Step::Timestamp { as_text } => w.timestamp(key.timestamp_ms, *as_text),
            }
        }
    }
}

/// Records an event's writing as an [`EventPlan`].
#[derive(Default)]
pub(super) struct PlanRecorder {
    plan: EventPlan,
    /// Where the shared text not yet in a step starts.
    pending: usize,
}

impl PlanRecorder {
    fn shared(&mut self) -> EventWriter<'_> {
        EventWriter {
            out: &mut self.plan.shared,
            added: 0,
        }
    }

    fn place(&mut self, step: Step) {
        self.close_shared();
        self.plan.steps.push(step);
    }

    fn close_shared(&mut self) {
        let end = self.plan.shared.len();
        if end > self.pending {
            self.plan.steps.push(Step::Shared(self.pending..end));
            self.pending = end;
        }
    }

    pub(super) fn finish(mut self, over_limit: u64) -> EventPlan {
        self.close_shared();
        self.plan.over_limit = over_limit;
        self.plan
    }
}

impl EventOut for PlanRecorder {
    fn structure(&mut self, text: &str) {
        self.plan.added += embedded_json::write_structure(&mut self.plan.shared, text);
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        let mut w = self.shared();
        w.value(value);
        self.plan.added += w.added;
    }

    fn text(&mut self, text: &str) {
        self.plan.added += embedded_json::write_str(&mut self.plan.shared, text);
    }

    fn byte(&mut self, byte: u8) {
        self.plan.shared.push(byte);
    }

    fn escaped(&mut self, bytes: &[u8], added: usize) {
        self.plan.shared.extend_from_slice(bytes);
        self.plan.added += added;
    }

    fn label_value(&mut self, index: usize, _: &str) {
        self.place(Step::Label(index));
    }

    fn metric_value(&mut self, index: usize, _: &EmfValue) {
        self.place(Step::Metric(index));
    }

    fn timestamp(&mut self, _: i64, as_text: bool) {
        self.place(Step::Timestamp { as_text });
    }
}

/// Event plans by shape: target, label keys, and each metric's name, unit and resolution.
#[derive(Default)]
pub(super) struct PlanCache {
    by_shape: hashbrown::HashMap<Box<[u8]>, EventPlan>,
    lookup: Vec<u8>,
}

impl PlanCache {
    /// The plan of this event's shape, recorded by `record` the first time the shape is met.
    pub(super) fn get_or_record(
        &mut self,
        target: usize,
        key: &GroupKey<'_>,
        metrics: &[GroupedMetric<'_>],
        record: impl FnOnce() -> EventPlan,
    ) -> &EventPlan {
        self.shape(target, key, metrics);
        self.by_shape
            .entry_ref(&self.lookup[..])
            .or_insert_with(record)
    }

    /// The shape of an event as bytes, every text length-prefixed so that no two shapes meet.
    fn shape(&mut self, target: usize, key: &GroupKey<'_>, metrics: &[GroupedMetric<'_>]) {
        fn push_text(lookup: &mut Vec<u8>, text: &str) {
            lookup.extend_from_slice(&(text.len() as u32).to_le_bytes());
            lookup.extend_from_slice(text.as_bytes());
        }
        let lookup = &mut self.lookup;
        lookup.clear();
        lookup.extend_from_slice(&(target as u64).to_le_bytes());
        lookup.extend_from_slice(&(key.labels.len() as u32).to_le_bytes());
        for label in key.labels.keys() {
            push_text(lookup, label);
        }
        for metric in metrics {
            push_text(lookup, &metric.name);
            push_text(lookup, &metric.unit);
            lookup.push(metric.storage_resolution);
        }
    }
}
