//! The CloudWatch cardinality budget: a hard cap on the distinct metrics CloudWatch bills.
//!
//! CloudWatch bills every distinct (namespace, metric name, dimension set with its values) at
//! about $0.30 a month, prorated by the hour. The budget counts exactly those identities, per UTC
//! clock hour, after rollup and `metric_declarations`. A data point whose identities fit is
//! admitted; one that would pass the cap is folded into one overflow metric per name (single
//! dimension `otel.metric.overflow = "true"`, the OpenTelemetry SDK's convention) or left out of
//! the directive. Either way its labels and value stay in the log event as plain fields.
//!
//! Hot path: an admitted identity is one hash and one lookup in a map owned by the exporter's
//! single task, with no allocation.

mod config;
mod identity;
mod report;
#[cfg(test)]
mod tests;

use super::fleet::{FleetRequest, FleetVerdict, PendingPoint};
use super::labels::Labels;
pub use config::{
    BudgetConfig, BudgetSection, DEFAULT_PRICE_PER_METRIC_MONTH, MIN_METRICS, OnExceed,
};
use identity::IdentityMap;
pub use identity::{IdentityHasher, OVERFLOW_KEY};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Distinct values remembered per (metric name, dimension key) to name the label to fix.
const MAX_TRACKED_VALUES: usize = 1024;
const HOUR_MS: i64 = 3_600_000;

/// The budget's verdict on one data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Folded,
    Dropped,
}

/// Per metric name: how many identities it holds and which labels vary most.
#[derive(Debug, Default, Clone)]
struct NameUsage {
    regular: usize,
    overflowed: bool,
    folded: u64,
    dropped: u64,
    distinct_values: BTreeMap<String, HashSet<u64>>,
}

/// One exporter's budget: this sidecar's alone, or its view of a fleet's (`fleet`).
#[derive(Clone)]
pub struct CardinalityBudget {
    config: BudgetConfig,
    limit: usize,
    hasher: IdentityHasher,
    hour: i64,
    /// Admitted identities only (with a shared budget: those this sidecar knows the fleet
    /// admitted, a cache that saves asking again).
    admitted: IdentityMap<Seen>,
    names: HashMap<String, NameUsage>,
    fleet: Option<FleetView>,
}

/// What this sidecar knows of the fleet's budget this hour.
#[derive(Debug, Clone, Default)]
struct FleetView {
    /// Whether the store may be asked during this batch (not while it is failing).
    available: bool,
    /// Identities the fleet refused this hour: its admitted set only grows within an hour, so
    /// a refusal stands until the hour ends.
    denied: IdentityMap<()>,
    /// Admitted identities reported to the store as seen this hour, and those still to report
    /// (so the fleet carries them into the next hour).
    reported: IdentityMap<()>,
    to_report: Vec<u64>,
    pending: Vec<PendingPoint>,
    /// The fleet's admitted count at the store's last answer.
    admitted: u64,
}

/// When an admitted identity was last seen, and whether it is a regular or overflow metric.
#[derive(Debug, Clone, Copy)]
struct Seen {
    hour: i64,
    overflow: bool,
}

impl CardinalityBudget {
    pub fn new(config: BudgetConfig) -> Self {
        CardinalityBudget {
            limit: config.limit(),
            config,
            hasher: IdentityHasher::default(),
            hour: i64::MIN,
            admitted: IdentityMap::default(),
            names: HashMap::new(),
            fleet: None,
        }
    }

    /// A budget whose new identities are admitted by the fleet's shared store.
    pub fn shared(config: BudgetConfig) -> Self {
        CardinalityBudget {
            fleet: Some(FleetView {
                available: true,
                ..FleetView::default()
            }),
            ..CardinalityBudget::new(config)
        }
    }

    pub fn is_shared(&self) -> bool {
        self.fleet.is_some()
    }

    pub fn fold_mode(&self) -> bool {
        self.config.on_exceed == OnExceed::Fold
    }

    pub fn hour(&self) -> i64 {
        self.hour
    }

    /// Whether the store may be asked during the next render (false while it is failing:
    /// new identities then fold, so the cap holds during an outage).
    pub fn set_store_available(&mut self, available: bool) {
        if let Some(fleet) = self.fleet.as_mut() {
            fleet.available = available;
        }
    }

    /// What the last render needs the store for; empties the lists.
    pub fn take_request(&mut self) -> FleetRequest {
        let hour = self.hour;
        match self.fleet.as_mut() {
            Some(fleet) => FleetRequest {
                hour,
                pending: std::mem::take(&mut fleet.pending),
                seen: std::mem::take(&mut fleet.to_report),
            },
            None => FleetRequest::default(),
        }
    }

    /// Records the store's answers (in the order of `request.pending`) and the fleet's count.
    pub fn learn(
        &mut self,
        request: &FleetRequest,
        verdicts: &[FleetVerdict],
        fleet_admitted: u64,
    ) {
        let hour = self.hour;
        let fold = self.fold_mode();
        let Some(fleet) = self.fleet.as_mut() else {
            return;
        };
        fleet.admitted = fleet_admitted;
        for id in &request.seen {
            fleet.reported.insert(*id, ());
        }
        for (point, verdict) in request.pending.iter().zip(verdicts) {
            let regular = Seen {
                hour,
                overflow: false,
            };
            let overflow = Seen {
                hour,
                overflow: true,
            };
            match verdict {
                FleetVerdict::Admitted => {
                    let mut new = 0;
                    for id in &point.identities {
                        new += usize::from(self.admitted.insert(*id, regular).is_none());
                        fleet.reported.insert(*id, ());
                    }
                    self.names.entry(point.name.clone()).or_default().regular += new;
                    if fold {
                        self.admitted.insert(point.overflow, overflow);
                    }
                }
                FleetVerdict::Folded | FleetVerdict::Dropped => {
                    for id in &point.identities {
                        if !self.admitted.contains_key(id) {
                            fleet.denied.insert(*id, ());
                        }
                    }
                    if *verdict == FleetVerdict::Folded {
                        self.admitted.insert(point.overflow, overflow);
                    }
                }
            }
        }
    }

    /// The fleet's admitted count at the store's last answer.
    pub fn fleet_admitted(&self) -> Option<u64> {
        self.fleet.as_ref().map(|f| f.admitted)
    }

    pub fn hasher(&self) -> &IdentityHasher {
        &self.hasher
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Identities counted this hour.
    pub fn admitted(&self) -> usize {
        self.admitted.len()
    }

    /// Overflow identities among them.
    pub fn overflow_metrics(&self) -> usize {
        self.admitted.values().filter(|s| s.overflow).count()
    }

    pub fn projected_monthly_cost_usd(&self) -> f64 {
        self.admitted.len() as f64 * self.config.price_per_metric_month
    }

    /// Starts a new UTC hour when `now_ms` is in one: what was seen last hour stays admitted
    /// (so nothing flaps at the boundary); what was not seen for a whole hour is forgotten.
    pub fn advance(&mut self, now_ms: i64) {
        let hour = now_ms.div_euclid(HOUR_MS);
        if hour == self.hour {
            return;
        }
        let previous = self.hour;
        self.hour = hour;
        self.admitted.retain(|_, seen| seen.hour == previous);
        for seen in self.admitted.values_mut() {
            seen.hour = hour;
        }
        // Per-name counts restart; carried identities still count against the total, which is
        // what CloudWatch bills (an over-estimate when some carried series stay silent).
        for usage in self.names.values_mut() {
            usage.regular = 0;
            usage.overflowed = false;
        }
        if let Some(fleet) = self.fleet.as_mut() {
            fleet.denied.clear();
            fleet.reported.clear();
            fleet.to_report.clear();
        }
    }

    /// Decides for one data point of `metric` whose identities are `identities`.
    pub fn admit(
        &mut self,
        namespace: &str,
        metric: &str,
        identities: &[u64],
        labels: &Labels<'_>,
    ) -> Admission {
        let hour = self.hour;
        let mut new = 0;
        for id in identities {
            match self.admitted.get_mut(id) {
                Some(seen) => seen.hour = hour,
                None => new += 1,
            }
        }
        let overflow_id = self.hasher.overflow_identity(namespace, metric);
        if new == 0 {
            if let Some(fleet) = self.fleet.as_mut() {
                for id in identities {
                    if !fleet.reported.contains_key(id) {
                        fleet.reported.insert(*id, ());
                        fleet.to_report.push(*id);
                    }
                }
            }
            return Admission::Admitted;
        }
        if let Some(fleet) = self.fleet.as_mut() {
            let refused = identities
                .iter()
                .any(|id| !self.admitted.contains_key(id) && fleet.denied.contains_key(id));
            if !refused && fleet.available {
                // Only the store can say: provisionally out of the directive, and rendered again
                // once it answered (nothing is counted for this render).
                fleet.pending.push(PendingPoint {
                    name: metric.to_string(),
                    overflow: overflow_id,
                    identities: identities.to_vec(),
                });
                return Admission::Dropped;
            }
        }
        let usage = match self.names.get_mut(metric) {
            Some(usage) => usage,
            None => self.names.entry(metric.to_string()).or_default(),
        };
        for (key, value) in labels.iter() {
            let values = match usage.distinct_values.get_mut(key) {
                Some(values) => values,
                None => usage.distinct_values.entry(key.to_string()).or_default(),
            };
            if values.len() < MAX_TRACKED_VALUES {
                values.insert(self.hasher.value_hash(value));
            }
        }
        // In fold mode every name keeps room for its overflow metric.
        let reserve = usize::from(
            self.config.on_exceed == OnExceed::Fold && !self.admitted.contains_key(&overflow_id),
        );
        // With a shared budget only the store admits: here the point is refused or the store
        // cannot be asked.
        let fits_total = self.fleet.is_none() && self.admitted.len() + new + reserve <= self.limit;
        let fits_name = self
            .config
            .max_metrics_per_name
            .is_none_or(|max| usage.regular + new <= max);
        if fits_total && fits_name {
            usage.regular += new;
            for id in identities {
                self.admitted.insert(
                    *id,
                    Seen {
                        hour,
                        overflow: false,
                    },
                );
            }
            if reserve == 1 {
                self.admitted.insert(
                    overflow_id,
                    Seen {
                        hour,
                        overflow: true,
                    },
                );
            }
            return Admission::Admitted;
        }
        let first_overflow = !usage.overflowed;
        usage.overflowed = true;
        let verdict = match self.config.on_exceed {
            OnExceed::Fold => {
                // The overflow metric is billed too: fold only into one the budget holds.
                if let Some(seen) = self.admitted.get_mut(&overflow_id) {
                    seen.hour = hour;
                    usage.folded += 1;
                    Admission::Folded
                } else if self.fleet.is_none() && self.admitted.len() < self.limit {
                    self.admitted.insert(
                        overflow_id,
                        Seen {
                            hour,
                            overflow: true,
                        },
                    );
                    usage.folded += 1;
                    Admission::Folded
                } else {
                    usage.dropped += 1;
                    Admission::Dropped
                }
            }
            OnExceed::Drop => {
                usage.dropped += 1;
                Admission::Dropped
            }
        };
        if first_overflow {
            let culprits = top_keys(usage, 3);
            tracing::warn!(
                metric = metric,
                budget = self.limit,
                labels_with_most_values = %culprits.iter().map(|(k, n)| format!("{k} ({n} values)")).collect::<Vec<_>>().join(", "),
                "CloudWatch cardinality budget reached: new dimension values of this metric are {}; fix the label with the most values",
                if verdict == Admission::Folded { "folded into otel.metric.overflow" } else { "left out of the directive" }
            );
        }
        verdict
    }
}

/// The `n` dimension keys of a metric name with the most distinct values: the labels to fix.
fn top_keys(usage: &NameUsage, n: usize) -> Vec<(String, usize)> {
    let mut keys: Vec<(String, usize)> = usage
        .distinct_values
        .iter()
        .filter(|(k, _)| k.as_str() != "OTelLib")
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    keys.truncate(n);
    keys
}
