//! What a condition is made of: its paths, values, operators and expressions, and the context
//! each path belongs to.

use regex::Regex;

/// Where a condition is evaluated: the lowest level any of its paths names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    Resource,
    Metric,
    DataPoint,
    Span,
}

/// A number data point's value, for `datapoint.value_int` / `value_double`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointValue {
    Int(i64),
    Double(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Path {
    ResourceAttribute(String),
    MetricName,
    MetricType,
    MetricUnit,
    MetricDescription,
    MetricTemporality,
    MetricMonotonic,
    PointAttribute(String),
    PointValueInt,
    PointValueDouble,
    SpanName,
    SpanKind,
    SpanStatusCode,
    SpanAttribute(String),
}

impl Path {
    pub(super) fn context(&self) -> Context {
        match self {
            Path::ResourceAttribute(_) => Context::Resource,
            Path::MetricName
            | Path::MetricType
            | Path::MetricUnit
            | Path::MetricDescription
            | Path::MetricTemporality
            | Path::MetricMonotonic => Context::Metric,
            Path::PointAttribute(_) | Path::PointValueInt | Path::PointValueDouble => {
                Context::DataPoint
            }
            Path::SpanName | Path::SpanKind | Path::SpanStatusCode | Path::SpanAttribute(_) => {
                Context::Span
            }
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Nil,
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Lists, maps and bytes: equal to nothing.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub(super) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Value, Op, Value),
    IsMatch(Value, Regex),
    HasAttrOnDatapoint(String, String),
    HasAttrKeyOnDatapoint(String),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    Literal(Val),
    Path(Path),
}
