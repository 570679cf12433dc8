//! Building span attributes.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use serde_json::Value;

pub(super) fn kv(key: &str, value: Av) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(super) fn string(key: &str, value: &str) -> KeyValue {
    kv(key, Av::StringValue(value.to_string()))
}

pub(super) fn json_attribute(key: &str, value: &Value) -> Option<KeyValue> {
    Some(match value {
        Value::String(s) => string(key, s),
        Value::Bool(b) => kv(key, Av::BoolValue(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => kv(key, Av::IntValue(i)),
            None => kv(key, Av::DoubleValue(n.as_f64()?)),
        },
        _ => return None,
    })
}
