//! `exporters.awsemf.cardinality_budget`: the section as written and the budget it configures.

use crate::exporters::awsemf::fleet::SharedBudgetConfig;
use serde::Deserialize;

/// What CloudWatch charges per metric-month when the config does not say.
pub const DEFAULT_PRICE_PER_METRIC_MONTH: f64 = 0.30;

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
