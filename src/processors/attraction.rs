//! The attribute actions shared by the `resource` and `attributes` processors (the collector's
//! `attraction` package): insert, update, upsert, delete, hash, extract and convert, run in list
//! order against one attribute list. Checked once at start into [`Action`]s; regular
//! expressions are unanchored searches, as in the collector.

use crate::config::InvalidSetting;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value as Av,
};
use regex::Regex;
use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;
use sha2::{Digest, Sha256};

/// One action as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub value: Option<Yaml>,
    #[serde(default)]
    pub from_attribute: Option<String>,
    #[serde(default)]
    pub from_context: Option<String>,
    #[serde(default)]
    pub default_value: Option<Yaml>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub converted_type: Option<String>,
}

/// Where insert, update and upsert take their value from, in this order of preference.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSource {
    value: Option<AnyValue>,
    /// Request context (`metadata.<k>`, `client.address`): otel-sidecar's receivers keep none,
    /// so this never yields a value and the next sources are tried, as in the collector when
    /// the receiver does not include metadata.
    from_context: Option<String>,
    from_attribute: Option<String>,
    default_value: Option<AnyValue>,
}

/// `converted_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    String,
    Int,
    Double,
}

/// A validated action.
#[derive(Debug, Clone)]
pub enum Action {
    Insert { key: String, source: ValueSource },
    Update { key: String, source: ValueSource },
    Upsert { key: String, source: ValueSource },
    Delete { key: String, pattern: Option<Regex> },
    Hash { key: String, pattern: Option<Regex> },
    Extract { key: String, pattern: Regex },
    Convert { key: String, to: ConvertTo },
}

/// A YAML literal as an attribute value, its type following YAML's.
pub fn yaml_to_any(value: &Yaml) -> AnyValue {
    let v = match value {
        Yaml::Bool(b) => Av::BoolValue(*b),
        Yaml::Number(n) => match n.as_i64() {
            Some(i) => Av::IntValue(i),
            None => Av::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Yaml::String(s) => Av::StringValue(s.clone()),
        Yaml::Sequence(items) => Av::ArrayValue(ArrayValue {
            values: items.iter().map(yaml_to_any).collect(),
        }),
        Yaml::Mapping(map) => Av::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.as_str().map(str::to_string).unwrap_or_default(),
                    value: Some(yaml_to_any(v)),
                    ..Default::default()
                })
                .collect(),
        }),
        Yaml::Tagged(tagged) => return yaml_to_any(&tagged.value),
        Yaml::Null => return AnyValue { value: None },
    };
    AnyValue { value: Some(v) }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("Field \"pattern\" has invalid pattern: {e}"))
}

impl ActionConfig {
    /// Checks one action (the `n`-th, 0-based) with the collector's messages.
    pub fn validate(&self, n: usize) -> Result<Action, InvalidSetting> {
        const ACTIONS: &[&str] = &[
            "insert", "update", "upsert", "delete", "hash", "extract", "convert",
        ];
        if !ACTIONS.contains(&self.action.to_ascii_lowercase().as_str()) {
            return Err(InvalidSetting::collector(
                "action",
                format!("{:?}", self.action),
                &format!(
                    "unsupported action at the {n}-th action (expected one of {})",
                    ACTIONS.join(", ")
                ),
            ));
        }
        self.action_of(n)
            .map_err(|message| InvalidSetting::rule("", message))
    }

    fn action_of(&self, n: usize) -> Result<Action, String> {
        let action = self.action.to_ascii_lowercase();
        let key = self.key.clone();
        let sources = [
            self.value.is_some(),
            self.from_attribute.is_some(),
            self.from_context.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        let with_key = |what: &str| format!("error with key {key:?} ({n}-th action): {what}");
        match action.as_str() {
            "insert" | "update" | "upsert" => {
                if key.is_empty() {
                    return Err(format!(
                        "missing required field \"key\" at the {n}-th action"
                    ));
                }
                if sources == 0 && self.default_value.is_none() {
                    return Err(with_key(
                        "Either field \"value\", \"from_attribute\", \"from_context\", or \"default_value\" must be specified",
                    ));
                }
                if sources > 1 {
                    return Err(with_key("due to multiple value sources being set"));
                }
                if self.pattern.is_some() {
                    return Err(with_key("action does not use the \"pattern\" field"));
                }
                if self.converted_type.is_some() {
                    return Err(with_key("action does not use the \"converted_type\" field"));
                }
                if let Some(context) = &self.from_context
                    && context.starts_with("auth.")
                {
                    return Err(with_key(
                        "from_context \"auth.*\" needs an authenticator, which otel-sidecar does not have",
                    ));
                }
                let source = ValueSource {
                    value: self.value.as_ref().map(yaml_to_any),
                    from_context: self.from_context.clone(),
                    from_attribute: self.from_attribute.clone(),
                    default_value: self.default_value.as_ref().map(yaml_to_any),
                };
                Ok(match action.as_str() {
                    "insert" => Action::Insert { key, source },
                    "update" => Action::Update { key, source },
                    _ => Action::Upsert { key, source },
                })
            }
            "delete" | "hash" => {
                if key.is_empty() && self.pattern.is_none() {
                    return Err(format!(
                        "missing required field (at least one of \"key\" and \"pattern\" have to be used) at the {n}-th action"
                    ));
                }
                if self.value.is_some() || self.from_attribute.is_some() {
                    return Err(with_key(
                        "action does not use \"value\" or \"from_attribute\" field. These must not be specified for delete or hash actions",
                    ));
                }
                if self.converted_type.is_some() {
                    return Err(with_key("action does not use the \"converted_type\" field"));
                }
                let pattern = self
                    .pattern
                    .as_deref()
                    .map(compile)
                    .transpose()
                    .map_err(|e| with_key(&e))?;
                Ok(if action == "delete" {
                    Action::Delete { key, pattern }
                } else {
                    Action::Hash { key, pattern }
                })
            }
            "extract" => {
                if key.is_empty() {
                    return Err(format!(
                        "missing required field \"key\" at the {n}-th action"
                    ));
                }
                if sources > 0 || self.default_value.is_some() {
                    return Err(with_key("action does not use a value source field"));
                }
                let Some(pattern) = &self.pattern else {
                    return Err(with_key("missing required field \"pattern\""));
                };
                let pattern = compile(pattern).map_err(|e| with_key(&e))?;
                let names: Vec<_> = pattern.capture_names().skip(1).collect();
                if names.is_empty() {
                    return Err(with_key(
                        "Field \"pattern\" contains no named matcher groups",
                    ));
                }
                if names.iter().any(Option::is_none) {
                    return Err(with_key(
                        "Field \"pattern\" contains at least one unnamed matcher group",
                    ));
                }
                Ok(Action::Extract { key, pattern })
            }
            "convert" => {
                if key.is_empty() {
                    return Err(format!(
                        "missing required field \"key\" at the {n}-th action"
                    ));
                }
                if sources > 0 || self.pattern.is_some() {
                    return Err(with_key("action does not use value sources or pattern"));
                }
                let to = match self.converted_type.as_deref() {
                    None | Some("") => {
                        return Err(with_key("missing required field \"converted_type\""));
                    }
                    Some("string") => ConvertTo::String,
                    Some("int") => ConvertTo::Int,
                    Some("double") => ConvertTo::Double,
                    Some(other) => {
                        return Err(with_key(&format!(
                            "invalid value {other:?} in field \"converted_type\""
                        )));
                    }
                };
                Ok(Action::Convert { key, to })
            }
            other => Err(format!("unsupported action {other:?} at the {n}-th action")),
        }
    }
}

/// Validates a list of actions; errors carry the index below the list's key.
pub fn validate_actions(
    list_key: &str,
    actions: &[ActionConfig],
) -> Result<Vec<Action>, InvalidSetting> {
    if actions.is_empty() {
        return Err(InvalidSetting::rule(
            list_key,
            format!("missing required field {list_key:?}"),
        ));
    }
    actions
        .iter()
        .enumerate()
        .map(|(n, a)| {
            a.validate(n)
                .map_err(|e| e.below(&format!("{list_key}[{n}]")))
        })
        .collect()
}

fn position(attributes: &[KeyValue], key: &str) -> Option<usize> {
    attributes.iter().position(|kv| kv.key == key)
}

fn resolve(source: &ValueSource, attributes: &[KeyValue]) -> Option<AnyValue> {
    if let Some(value) = &source.value {
        return Some(value.clone());
    }
    if let Some(from) = &source.from_attribute
        && let Some(i) = position(attributes, from)
    {
        return Some(attributes[i].value.clone().unwrap_or_default());
    }
    source.default_value.clone()
}

fn set(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match position(attributes, key) {
        Some(i) => attributes[i].value = Some(value),
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

fn string(text: String) -> AnyValue {
    AnyValue {
        value: Some(Av::StringValue(text)),
    }
}

/// Lower-case hex SHA-256 of a value: strings as UTF-8, booleans as one byte, integers and
/// doubles as 8 little-endian bytes; maps, lists, bytes and empty values hash to nothing and
/// become `""`.
fn hash(value: &AnyValue) -> AnyValue {
    let bytes: Vec<u8> = match &value.value {
        Some(Av::StringValue(s)) => s.as_bytes().to_vec(),
        Some(Av::BoolValue(b)) => vec![u8::from(*b)],
        Some(Av::IntValue(i)) => i.to_le_bytes().to_vec(),
        Some(Av::DoubleValue(d)) => d.to_bits().to_le_bytes().to_vec(),
        _ => return string(String::new()),
    };
    string(crate::pipeline::values::hex(&Sha256::digest(&bytes)))
}

/// A double as JavaScript (and the collector's `convert`) writes it.
pub fn es6_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return match exponent.strip_prefix('-') {
            Some(negative) => format!("{mantissa}e-{negative}"),
            None => format!("{mantissa}e+{exponent}"),
        };
    }
    format!("{x}")
}

fn convert(value: &AnyValue, to: ConvertTo) -> Option<AnyValue> {
    let converted = match (to, value.value.as_ref()?) {
        (ConvertTo::String, Av::StringValue(_)) => return None,
        (ConvertTo::String, Av::IntValue(i)) => Av::StringValue(i.to_string()),
        (ConvertTo::String, Av::DoubleValue(d)) => Av::StringValue(es6_number(*d)),
        (ConvertTo::String, Av::BoolValue(b)) => Av::StringValue(b.to_string()),
        (ConvertTo::String, _) => {
            Av::StringValue(crate::pipeline::values::value_json(value).to_string())
        }
        (ConvertTo::Int, Av::DoubleValue(d)) => Av::IntValue(d.trunc() as i64),
        (ConvertTo::Int, Av::BoolValue(b)) => Av::IntValue(i64::from(*b)),
        (ConvertTo::Int, Av::StringValue(s)) => Av::IntValue(s.parse().ok()?),
        (ConvertTo::Double, Av::IntValue(i)) => Av::DoubleValue(*i as f64),
        (ConvertTo::Double, Av::BoolValue(b)) => Av::DoubleValue(f64::from(u8::from(*b))),
        (ConvertTo::Double, Av::StringValue(s)) => Av::DoubleValue(s.parse().ok()?),
        _ => return None,
    };
    Some(AnyValue {
        value: Some(converted),
    })
}

/// Runs the actions in order on one attribute list.
pub fn apply(actions: &[Action], attributes: &mut Vec<KeyValue>) {
    for action in actions {
        match action {
            Action::Insert { key, source } => {
                if position(attributes, key).is_none()
                    && let Some(value) = resolve(source, attributes)
                {
                    set(attributes, key, value);
                }
            }
            Action::Update { key, source } => {
                if position(attributes, key).is_some()
                    && let Some(value) = resolve(source, attributes)
                {
                    set(attributes, key, value);
                }
            }
            Action::Upsert { key, source } => {
                if let Some(value) = resolve(source, attributes) {
                    set(attributes, key, value);
                }
            }
            Action::Delete { key, pattern } => {
                attributes.retain(|kv| {
                    kv.key != *key && !pattern.as_ref().is_some_and(|p| p.is_match(&kv.key))
                });
            }
            Action::Hash { key, pattern } => {
                for kv in attributes.iter_mut() {
                    if kv.key == *key || pattern.as_ref().is_some_and(|p| p.is_match(&kv.key)) {
                        kv.value = Some(hash(kv.value.as_ref().unwrap_or(&AnyValue::default())));
                    }
                }
            }
            Action::Extract { key, pattern } => {
                let Some(Av::StringValue(text)) = position(attributes, key)
                    .and_then(|i| attributes[i].value.as_ref())
                    .and_then(|v| v.value.clone())
                else {
                    continue;
                };
                let Some(captures) = pattern.captures(&text) else {
                    continue;
                };
                for name in pattern.capture_names().flatten() {
                    let value = captures.name(name).map(|m| m.as_str()).unwrap_or("");
                    set(attributes, name, string(value.to_string()));
                }
            }
            Action::Convert { key, to } => {
                if let Some(i) = position(attributes, key)
                    && let Some(value) = attributes[i].value.as_ref().and_then(|v| convert(v, *to))
                {
                    attributes[i].value = Some(value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Av) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(key: &str, value: &str) -> KeyValue {
        kv(key, Av::StringValue(value.into()))
    }

    fn actions(yaml: &str) -> Result<Vec<Action>, InvalidSetting> {
        let configs: Vec<ActionConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        validate_actions("attributes", &configs)
    }

    fn run(yaml: &str, mut attributes: Vec<KeyValue>) -> Vec<KeyValue> {
        apply(&actions(yaml).unwrap(), &mut attributes);
        attributes
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        crate::pipeline::values::hex(&Sha256::digest(bytes))
    }

    /// Cases of the collector's attraction package (its actions, one table row each).
    #[test]
    fn actions_behave_as_in_the_collector() {
        assert_eq!(
            run("[{key: k, value: v, action: insert}]", vec![s("k", "old")]),
            vec![s("k", "old")],
            "insert never overwrites"
        );
        assert_eq!(
            run(
                "[{key: A, from_attribute: B, action: insert}, {key: B, action: delete}]",
                vec![kv("B", Av::IntValue(7))]
            ),
            vec![kv("A", Av::IntValue(7))],
            "rename keeps the type"
        );
        assert_eq!(run("[{key: k, value: 1, action: update}]", vec![]), vec![]);
        assert_eq!(
            run(
                "[{key: k, from_attribute: missing, default_value: d, action: upsert}]",
                vec![]
            ),
            vec![s("k", "d")]
        );
        assert_eq!(
            run(
                "[{key: A, from_attribute: missing, action: insert}]",
                vec![s("b", "1")]
            ),
            vec![s("b", "1")],
            "a missing source is a silent no-op"
        );
        assert_eq!(
            run(
                "[{pattern: '^tmp_', action: delete}]",
                vec![s("tmp_a", "1"), s("b", "2"), s("xtmp_c", "3")]
            ),
            vec![s("b", "2"), s("xtmp_c", "3")]
        );
        assert_eq!(
            run("[{key: k, action: hash}]", vec![s("k", "abc")]),
            vec![s("k", &sha256_hex(b"abc"))]
        );
        assert_eq!(
            run("[{key: k, action: HASH}]", vec![kv("k", Av::IntValue(1))]),
            vec![s("k", &sha256_hex(&[1, 0, 0, 0, 0, 0, 0, 0]))],
            "action names are case-insensitive"
        );
        let list = Av::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(Av::IntValue(1)),
            }],
        });
        assert_eq!(
            run("[{key: k, action: hash}]", vec![kv("k", list)]),
            vec![s("k", "")]
        );
        let extracted = run(
            r"[{key: url, pattern: '^/(?P<svc>\w+)/(?P<id>\d+)?', action: extract}]",
            vec![s("url", "/api/")],
        );
        assert_eq!(
            extracted,
            vec![s("url", "/api/"), s("svc", "api"), s("id", "")]
        );
        assert_eq!(
            run(
                "[{key: k, converted_type: int, action: convert}]",
                vec![s("k", "12a")]
            ),
            vec![s("k", "12a")]
        );
        assert_eq!(
            run(
                "[{key: k, converted_type: int, action: convert}]",
                vec![kv("k", Av::DoubleValue(-3.9))]
            ),
            vec![kv("k", Av::IntValue(-3))]
        );
        assert_eq!(
            run(
                "[{key: k, converted_type: string, action: convert}]",
                vec![kv("k", Av::DoubleValue(1e21))]
            ),
            vec![s("k", "1e+21")]
        );
        assert_eq!(
            run(
                "[{key: k, converted_type: double, action: convert}]",
                vec![s("k", "2.5")]
            ),
            vec![kv("k", Av::DoubleValue(2.5))]
        );
        assert_eq!(
            run("[{key: k, value: [1, x], action: upsert}]", vec![]),
            vec![kv(
                "k",
                Av::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Av::IntValue(1))
                        },
                        AnyValue {
                            value: Some(Av::StringValue("x".into()))
                        }
                    ]
                })
            )]
        );
    }

    #[test]
    fn es6_numbers() {
        for (x, want) in [
            (1e21, "1e+21"),
            (1.5, "1.5"),
            (3.0, "3"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (-2.5e22, "-2.5e+22"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(es6_number(x), want);
        }
    }

    #[test]
    fn bad_actions_are_refused_with_the_collectors_words() {
        let cases = [
            ("[]", "attributes", "missing required field \"attributes\""),
            (
                "[{action: insert, value: 1}]",
                "attributes[0]",
                "missing required field \"key\"",
            ),
            (
                "[{key: k, action: insert}]",
                "attributes[0]",
                "Either field \"value\"",
            ),
            (
                "[{key: k, action: insert, value: 1, from_attribute: b}]",
                "attributes[0]",
                "multiple value sources",
            ),
            (
                "[{action: delete}]",
                "attributes[0]",
                "at least one of \"key\" and \"pattern\"",
            ),
            (
                "[{key: k, action: delete, value: 1}]",
                "attributes[0]",
                "does not use \"value\"",
            ),
            (
                "[{key: k, action: extract, pattern: 'x'}]",
                "attributes[0]",
                "contains no named matcher groups",
            ),
            (
                "[{key: k, action: extract, pattern: '(x)'}]",
                "attributes[0]",
                "unnamed matcher group",
            ),
            (
                "[{key: k, action: extract, pattern: '(?P<a>x)(y)'}]",
                "attributes[0]",
                "unnamed matcher group",
            ),
            (
                "[{key: k, action: convert}]",
                "attributes[0]",
                "missing required field \"converted_type\"",
            ),
            (
                "[{key: k, action: convert, converted_type: bool}]",
                "attributes[0]",
                "invalid value \"bool\"",
            ),
            (
                "[{key: k, action: rename}]",
                "attributes[0].action",
                "\"rename\": unsupported action",
            ),
            (
                "[{key: k, action: delete, pattern: '('}]",
                "attributes[0]",
                "invalid pattern",
            ),
        ];
        for (yaml, path, message) in cases {
            let got = actions(yaml).unwrap_err();
            assert_eq!(got.path, path, "{yaml}");
            assert!(got.to_string().contains(message), "{yaml}: {got}");
        }
    }
}
