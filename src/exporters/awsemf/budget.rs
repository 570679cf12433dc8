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

use super::fleet::{FleetRequest, FleetVerdict, PendingPoint, SharedBudgetConfig};
use super::labels::Labels;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Identities are already well-mixed 64-bit hashes: the map uses them as they are instead of
/// hashing them again (this is most of the admission cost on the hot path).
#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdentityMap<V> = hashbrown::HashMap<u64, V, BuildHasherDefault<PassThroughHasher>>;

/// The OpenTelemetry SDK's overflow attribute.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";
/// What CloudWatch charges per metric-month when the config does not say.
pub const DEFAULT_PRICE_PER_METRIC_MONTH: f64 = 0.30;
/// Distinct values remembered per (metric name, dimension key) to name the label to fix.
const MAX_TRACKED_VALUES: usize = 1024;
const HOUR_MS: i64 = 3_600_000;

/// What happens to a point beyond the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    #[default]
    Fold,
    Drop,
}

/// `exporters.awsemf.cardinality_budget`, validated (see [`BudgetSection`]).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(try_from = "BudgetSection")]
pub struct BudgetConfig {
    pub max_metrics: Option<usize>,
    pub max_monthly_cost_usd: Option<f64>,
    pub price_per_metric_month: f64,
    pub max_metrics_per_name: Option<usize>,
    pub on_exceed: OnExceed,
    /// One budget for every sidecar of a fleet, through a Valkey/Redis store.
    pub shared: Option<SharedBudgetConfig>,
}

fn default_price() -> f64 {
    DEFAULT_PRICE_PER_METRIC_MONTH
}

impl BudgetConfig {
    /// A budget of `max_metrics` with every other setting at its default.
    pub fn with_max_metrics(max_metrics: usize) -> Self {
        BudgetConfig {
            max_metrics: Some(max_metrics),
            max_monthly_cost_usd: None,
            price_per_metric_month: DEFAULT_PRICE_PER_METRIC_MONTH,
            max_metrics_per_name: None,
            on_exceed: OnExceed::Fold,
            shared: None,
        }
    }

    /// The cap in metrics: the smaller of `max_metrics` and what `max_monthly_cost_usd` buys.
    pub fn limit(&self) -> usize {
        let by_cost = self
            .max_monthly_cost_usd
            .map(|cost| (cost / self.price_per_metric_month + 1e-9).floor() as usize);
        match (self.max_metrics, by_cost) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => usize::MAX,
        }
    }

    /// Refuses a budget that would not cap anything: neither limit set, a limit too small to
    /// hold one regular metric and the overflow metric it reserves, a price that is not positive.
    /// Errors carry the key below `cardinality_budget`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, message: String| Err((key.to_string(), message));
        if self.max_metrics.is_none() && self.max_monthly_cost_usd.is_none() {
            return err(
                "max_metrics",
                "a budget needs max_metrics or max_monthly_cost_usd (without either it caps nothing)"
                    .into(),
            );
        }
        if !self.price_per_metric_month.is_finite() || self.price_per_metric_month <= 0.0 {
            return err(
                "price_per_metric_month",
                format!(
                    "{} is not a price: must be greater than 0",
                    self.price_per_metric_month
                ),
            );
        }
        if let Some(max) = self.max_metrics
            && max < MIN_METRICS
        {
            return err(
                "max_metrics",
                format!(
                    "{max} is too small: the budget must hold at least {MIN_METRICS} metrics (one regular, one overflow)"
                ),
            );
        }
        if let Some(cost) = self.max_monthly_cost_usd {
            let minimum = MIN_METRICS as f64 * self.price_per_metric_month;
            if !cost.is_finite() || cost < minimum - 1e-9 {
                return err(
                    "max_monthly_cost_usd",
                    format!(
                        "{cost} is too small: must buy at least {MIN_METRICS} metrics (${minimum:.2} at ${} per metric-month)",
                        self.price_per_metric_month
                    ),
                );
            }
        }
        if let Some(shared) = &self.shared {
            shared
                .validate()
                .map_err(|(key, message)| (format!("shared.{key}"), message))?;
        }
        if self.max_metrics_per_name == Some(0) {
            return err(
                "max_metrics_per_name",
                "must be at least 1 (leave it out for no per-name cap)".into(),
            );
        }
        Ok(())
    }
}

/// The smallest budget that caps anything: one regular metric and the overflow metric that
/// folding reserves for its name.
pub const MIN_METRICS: usize = 2;

/// `cardinality_budget` as written, checked into a [`BudgetConfig`] at decode time so a cap that
/// means "no cap" is refused at start with its YAML path.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    #[serde(default)]
    max_metrics: Option<usize>,
    #[serde(default)]
    max_monthly_cost_usd: Option<f64>,
    #[serde(default = "default_price")]
    price_per_metric_month: f64,
    #[serde(default)]
    max_metrics_per_name: Option<usize>,
    #[serde(default)]
    on_exceed: OnExceed,
    #[serde(default)]
    shared: Option<SharedBudgetConfig>,
}

impl TryFrom<BudgetSection> for BudgetConfig {
    type Error = String;

    fn try_from(section: BudgetSection) -> Result<Self, String> {
        let config = BudgetConfig {
            max_metrics: section.max_metrics,
            max_monthly_cost_usd: section.max_monthly_cost_usd,
            price_per_metric_month: section.price_per_metric_month,
            max_metrics_per_name: section.max_metrics_per_name,
            on_exceed: section.on_exceed,
            shared: section.shared,
        };
        config
            .validate()
            .map(|()| config)
            .map_err(|(key, message)| format!("{key}: {message}"))
    }
}

/// The budget's verdict on one data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Folded,
    Dropped,
}

/// Hashes a CloudWatch metric identity without allocating. The seed is fixed: every sidecar of
/// a fleet must give one metric the same identity to share a budget.
#[derive(Clone)]
pub struct IdentityHasher(foldhash::fast::FixedState);

impl Default for IdentityHasher {
    fn default() -> Self {
        IdentityHasher(foldhash::fast::FixedState::with_seed(0x6f74_656c_7369_6465))
    }
}

impl IdentityHasher {
    /// The identity of `metric` under one dimension set with the point's label values.
    pub fn identity(
        &self,
        namespace: &str,
        metric: &str,
        set: &[&str],
        labels: &Labels<'_>,
    ) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(namespace.as_bytes());
        h.write_u8(0);
        h.write(metric.as_bytes());
        for key in set {
            h.write_u8(0);
            h.write(key.as_bytes());
            h.write_u8(b'=');
            h.write(labels.get(key).map(str::as_bytes).unwrap_or_default());
        }
        h.finish()
    }

    fn overflow_identity(&self, namespace: &str, metric: &str) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(namespace.as_bytes());
        h.write_u8(0);
        h.write(metric.as_bytes());
        h.write_u8(0);
        h.write(OVERFLOW_KEY.as_bytes());
        h.write(b"=true");
        h.finish()
    }
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
                let mut h = self.hasher.0.build_hasher();
                h.write(value.as_bytes());
                values.insert(h.finish());
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

    /// The `/cardinality` document: top metric names by identity count and top dimension keys
    /// by distinct values.
    pub fn report(&self, fleet_name: &str) -> serde_json::Value {
        let mut names: Vec<(&String, &NameUsage)> = self.names.iter().collect();
        names.sort_by(|a, b| b.1.regular.cmp(&a.1.regular).then(a.0.cmp(b.0)));
        let mut keys: Vec<(String, String, usize)> = self
            .names
            .iter()
            .flat_map(|(name, usage)| {
                usage
                    .distinct_values
                    .iter()
                    .map(move |(k, v)| (name.clone(), k.clone(), v.len()))
            })
            .collect();
        keys.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        let mut report = serde_json::json!({
            "budget": self.limit,
            "admitted_metrics": self.admitted.len(),
            "projected_monthly_cost_usd": self.projected_monthly_cost_usd(),
            "top_metric_names": names.iter().take(20).map(|(n, u)| serde_json::json!({
                "name": n, "metrics": u.regular, "folded_points": u.folded, "dropped_points": u.dropped
            })).collect::<Vec<_>>(),
            "top_dimension_keys": keys.iter().take(20).map(|(n, k, c)| serde_json::json!({
                "metric_name": n, "key": k, "distinct_values": c
            })).collect::<Vec<_>>(),
        });
        if let Some(fleet) = &self.fleet {
            report["fleet"] = serde_json::json!({
                "fleet": fleet_name,
                "admitted_metrics": fleet.admitted,
                "this_task_share": self.admitted.len(),
                "projected_monthly_cost_usd": fleet.admitted as f64 * self.config.price_per_metric_month,
                "store_reachable": fleet.available,
            });
        }
        report
    }

    /// Folded and dropped points by metric name since the start.
    pub fn overflow_counts(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.names
            .iter()
            .filter(|(_, u)| u.folded + u.dropped > 0)
            .map(|(n, u)| (n.as_str(), u.folded, u.dropped))
    }
}

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

#[cfg(test)]
mod fleet_tests {
    use super::*;

    /// A shared budget asks the store about what it does not know, caches the answers for the
    /// hour, and folds new identities while the store cannot be asked.
    #[test]
    fn unknown_identities_wait_for_the_store_and_answers_are_cached() {
        let mut budget = CardinalityBudget::shared(BudgetConfig::with_max_metrics(10));
        budget.advance(0);
        let labels = Labels::from_pairs([("route", "/a")]);
        assert_eq!(budget.admit("ns", "m", &[1], &labels), Admission::Dropped);
        assert_eq!(budget.admit("ns", "m", &[2], &labels), Admission::Dropped);
        let request = budget.take_request();
        assert_eq!(request.pending.len(), 2);
        assert!(budget.take_request().is_empty());
        budget.learn(&request, &[FleetVerdict::Admitted, FleetVerdict::Folded], 3);
        assert_eq!(budget.admit("ns", "m", &[1], &labels), Admission::Admitted);
        assert_eq!(
            budget.admit("ns", "m", &[2], &labels),
            Admission::Folded,
            "refused: cached for the hour"
        );
        assert!(
            budget.take_request().pending.is_empty(),
            "no round trip for known identities"
        );
        assert_eq!(budget.fleet_admitted(), Some(3));
        budget.set_store_available(false);
        assert_eq!(
            budget.admit("ns", "m", &[3], &labels),
            Admission::Folded,
            "store gone: fold, never admit"
        );
        assert!(budget.take_request().pending.is_empty());
        budget.set_store_available(true);
        budget.advance(HOUR_MS);
        assert_eq!(
            budget.admit("ns", "m", &[2], &labels),
            Admission::Dropped,
            "a new hour: asked again"
        );
        assert_eq!(budget.take_request().pending.len(), 1);
    }
}
