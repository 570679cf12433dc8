//! The `/cardinality` document: where the budget goes, by metric name and dimension key.

use super::{CardinalityBudget, NameUsage};

impl CardinalityBudget {
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
