//! A validated transform: what it selects, what it does to the name, and its operations.

use super::aggregation::Aggregation;
use crate::processors::matching::Pattern;

#[derive(Debug, Clone)]
pub(super) enum Operation {
    AddLabel {
        label: String,
        value: String,
    },
    UpdateLabel {
        label: String,
        new_label: String,
        values: Vec<(String, String)>,
    },
    DeleteLabelValue {
        label: String,
        value: String,
    },
    ToggleScalarDataType,
    ScaleValue(f64),
    AggregateLabels {
        keep: Vec<String>,
        how: Option<Aggregation>,
    },
    AggregateLabelValues {
        label: String,
        values: Vec<String>,
        new_value: String,
        how: Option<Aggregation>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TransformAction {
    Update,
    Insert,
    Combine,
}

#[derive(Debug, Clone)]
pub(super) struct Transform {
    pub(super) include: Pattern,
    pub(super) labels: Vec<(String, Pattern)>,
    pub(super) action: TransformAction,
    pub(super) new_name: String,
    pub(super) how: Option<Aggregation>,
    pub(super) upper: Option<bool>,
    pub(super) operations: Vec<Operation>,
}
