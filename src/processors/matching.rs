//! The collector's `include` / `exclude` match properties (`filterconfig.MatchProperties`),
//! used by the `attributes` processor and the `filter` processor's legacy span form: names,
//! services, kinds, attributes, resources and libraries, matched strictly or by unanchored
//! regular expressions.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use regex::Regex;
use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;

/// `{key, value?}` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    pub key: String,
    #[serde(default)]
    pub value: Option<Yaml>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// One `include` or `exclude` block as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default)]
    pub match_type: String,
    /// The match-result cache settings: accepted, every match is computed.
    #[serde(default)]
    pub regexp: Option<Yaml>,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub span_names: Vec<String>,
    #[serde(default)]
    pub span_kinds: Vec<String>,
    #[serde(default)]
    pub metric_names: Vec<String>,
    #[serde(default)]
    pub attributes: Vec<AttributeConfig>,
    #[serde(default)]
    pub resources: Vec<AttributeConfig>,
    #[serde(default)]
    pub libraries: Vec<LibraryConfig>,
    #[serde(default)]
    pub log_bodies: Vec<String>,
    #[serde(default)]
    pub log_severity_texts: Vec<String>,
    #[serde(default)]
    pub log_severity_number: Option<Yaml>,
}

/// A string test: exact, or an unanchored regular expression.
#[derive(Debug, Clone)]
pub enum Pattern {
    Strict(String),
    Regexp(Regex),
}

impl Pattern {
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Pattern::Strict(s) => s == text,
            Pattern::Regexp(r) => r.is_match(text),
        }
    }
}

/// `strict` or `regexp` (the collector has no default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Strict,
    Regexp,
}

impl MatchType {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "strict" => Ok(MatchType::Strict),
            "regexp" => Ok(MatchType::Regexp),
            other => Err(format!(
                "unrecognized match_type: '{other}', valid types are: [regexp strict]"
            )),
        }
    }

    pub fn pattern(self, text: &str) -> Result<Pattern, String> {
        match self {
            MatchType::Strict => Ok(Pattern::Strict(text.to_string())),
            MatchType::Regexp => Regex::new(text)
                .map(Pattern::Regexp)
                .map_err(|e| format!("error creating regexp {text:?}: {e}")),
        }
    }
}

/// An attribute test: the key present, and the value equal (strict, same type) or matching.
#[derive(Debug, Clone)]
pub struct AttributeMatcher {
    key: String,
    value: Option<ValueTest>,
}

#[derive(Debug, Clone)]
enum ValueTest {
    Equal(AnyValue),
    Regexp(Regex),
}

impl AttributeMatcher {
    pub fn new(config: &AttributeConfig, match_type: Option<MatchType>) -> Result<Self, String> {
        let value = match (&config.value, match_type) {
            (None, _) => None,
            (Some(_), None) => {
                return Err("unrecognized match_type: '', valid types are: [regexp strict]".into());
            }
            (Some(v), Some(MatchType::Strict)) => {
                Some(ValueTest::Equal(super::attraction::yaml_to_any(v)))
            }
            (Some(Yaml::String(text)), Some(MatchType::Regexp)) => {
                Some(ValueTest::Regexp(Regex::new(text).map_err(|e| {
                    format!("error creating regexp {text:?}: {e}")
                })?))
            }
            (Some(other), Some(MatchType::Regexp)) => {
                return Err(format!(
                    "match_type=regexp for {:?} only supports Str, but found {other:?}",
                    config.key
                ));
            }
        };
        Ok(AttributeMatcher {
            key: config.key.clone(),
            value,
        })
    }

    pub fn is_match(&self, attributes: &[KeyValue]) -> bool {
        let Some(found) = attributes.iter().find(|kv| kv.key == self.key) else {
            return false;
        };
        let found = found.value.clone().unwrap_or_default();
        match &self.value {
            None => true,
            Some(ValueTest::Equal(want)) => *want == found,
            Some(ValueTest::Regexp(regex)) => match &found.value {
                Some(Av::StringValue(s)) => regex.is_match(s),
                Some(Av::BoolValue(b)) => regex.is_match(&b.to_string()),
                Some(Av::IntValue(i)) => regex.is_match(&i.to_string()),
                Some(Av::DoubleValue(d)) => regex.is_match(&super::attraction::es6_number(*d)),
                _ => false,
            },
        }
    }
}

/// A validated match block.
#[derive(Debug, Clone, Default)]
pub struct MatchProperties {
    services: Vec<Pattern>,
    span_names: Vec<Pattern>,
    span_kinds: Vec<Pattern>,
    metric_names: Vec<Pattern>,
    attributes: Vec<AttributeMatcher>,
    resources: Vec<AttributeMatcher>,
    libraries: Vec<(Pattern, Option<Pattern>)>,
}

/// Which signal a block is for: each accepts its own properties, as in the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchSignal {
    Spans,
    Metrics,
    Logs,
}

impl MatchConfig {
    /// Checks the block for `signal` into [`MatchProperties`].
    pub fn validate(&self, signal: MatchSignal) -> Result<MatchProperties, String> {
        if !self.log_bodies.is_empty()
            || !self.log_severity_texts.is_empty()
            || self.log_severity_number.is_some()
        {
            return Err(
                "log_bodies, log_severity_texts and log_severity_number are not supported by otel-sidecar"
                    .into(),
            );
        }
        match signal {
            MatchSignal::Metrics => {
                if !self.services.is_empty()
                    || !self.span_names.is_empty()
                    || !self.span_kinds.is_empty()
                    || !self.attributes.is_empty()
                    || !self.libraries.is_empty()
                {
                    return Err("\"services\", \"span_names\", \"span_kinds\", \"attributes\" and \"libraries\" are not valid for metrics".into());
                }
                if self.metric_names.is_empty() && self.resources.is_empty() {
                    return Err(
                        "at least one of \"metric_names\" or \"resources\" field must be specified"
                            .into(),
                    );
                }
            }
            MatchSignal::Spans | MatchSignal::Logs => {
                if !self.metric_names.is_empty() {
                    return Err("\"metric_names\" is not valid for spans or logs".into());
                }
                if signal == MatchSignal::Logs
                    && (!self.services.is_empty()
                        || !self.span_names.is_empty()
                        || !self.span_kinds.is_empty())
                {
                    return Err(
                        "\"services\", \"span_names\" and \"span_kinds\" are not valid for logs"
                            .into(),
                    );
                }
            }
        }
        let needs_type = !self.services.is_empty()
            || !self.span_names.is_empty()
            || !self.span_kinds.is_empty()
            || !self.metric_names.is_empty()
            || !self.libraries.is_empty();
        let match_type = if self.match_type.is_empty() && !needs_type {
            None
        } else {
            Some(MatchType::parse(&self.match_type)?)
        };
        let patterns = |list: &[String]| -> Result<Vec<Pattern>, String> {
            let Some(t) = match_type else {
                return Ok(Vec::new());
            };
            list.iter().map(|s| t.pattern(s)).collect()
        };
        if match_type == Some(MatchType::Strict) {
            for kind in &self.span_kinds {
                if span_kind(kind).is_none() {
                    return Err(format!(
                        "span_kinds string must match one of the standard span kinds, got {kind:?}"
                    ));
                }
            }
        }
        let attributes = |list: &[AttributeConfig]| -> Result<Vec<AttributeMatcher>, String> {
            list.iter()
                .map(|a| AttributeMatcher::new(a, match_type))
                .collect()
        };
        let libraries = self
            .libraries
            .iter()
            .map(|l| {
                let t = match_type.expect("libraries need a match type");
                Ok((
                    t.pattern(&l.name)?,
                    l.version.as_deref().map(|v| t.pattern(v)).transpose()?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(MatchProperties {
            services: patterns(&self.services)?,
            span_names: patterns(&self.span_names)?,
            span_kinds: patterns(&self.span_kinds)?,
            metric_names: patterns(&self.metric_names)?,
            attributes: attributes(&self.attributes)?,
            resources: attributes(&self.resources)?,
            libraries,
        })
    }
}

fn span_kind(text: &str) -> Option<SpanKind> {
    SpanKind::from_str_name(text)
}

fn service_name(resource: &[KeyValue]) -> String {
    match resource
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
    {
        Some(Av::StringValue(s)) => s.clone(),
        Some(other) => crate::pipeline::values::value_string(&AnyValue {
            value: Some(other.clone()),
        }),
        None => "<nil-service-name>".into(),
    }
}

fn any(patterns: &[Pattern], text: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.is_match(text))
}

impl MatchProperties {
    /// A span matches when every property the block has holds.
    pub fn matches_span(
        &self,
        span: &Span,
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
    ) -> bool {
        let kind = SpanKind::try_from(span.kind)
            .unwrap_or(SpanKind::Unspecified)
            .as_str_name();
        (self.services.is_empty() || any(&self.services, &service_name(resource)))
            && any(&self.span_names, &span.name)
            && any(&self.span_kinds, kind)
            && self.attributes.iter().all(|m| m.is_match(&span.attributes))
            && self.resources.iter().all(|m| m.is_match(resource))
            && self.matches_library(scope)
    }

    /// Metrics are matched by name only: the collector accepts `resources` here and never
    /// evaluates it.
    pub fn matches_metric(&self, name: &str) -> bool {
        any(&self.metric_names, name)
    }

    pub fn matches_log(
        &self,
        attributes: &[KeyValue],
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
    ) -> bool {
        self.attributes.iter().all(|m| m.is_match(attributes))
            && self.resources.iter().all(|m| m.is_match(resource))
            && self.matches_library(scope)
    }

    fn matches_library(&self, scope: Option<&InstrumentationScope>) -> bool {
        let (name, version) = scope
            .map(|s| (s.name.as_str(), s.version.as_str()))
            .unwrap_or_default();
        self.libraries
            .iter()
            .all(|(n, v)| n.is_match(name) && v.as_ref().is_none_or(|v| v.is_match(version)))
    }
}

/// `include` and `exclude` together: an item is processed unless the include block does not
/// match it or the exclude block does.
#[derive(Debug, Clone, Default)]
pub struct IncludeExclude {
    pub include: Option<MatchProperties>,
    pub exclude: Option<MatchProperties>,
}

impl IncludeExclude {
    pub fn new(
        include: Option<&MatchConfig>,
        exclude: Option<&MatchConfig>,
        signal: MatchSignal,
    ) -> Result<Self, (String, String)> {
        let check = |key: &str, block: Option<&MatchConfig>| {
            block
                .map(|b| b.validate(signal))
                .transpose()
                .map_err(|e| (key.to_string(), e))
        };
        Ok(IncludeExclude {
            include: check("include", include)?,
            exclude: check("exclude", exclude)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether the item passes, given how a block judges it.
    pub fn keeps(&self, matches: impl Fn(&MatchProperties) -> bool) -> bool {
        self.include.as_ref().is_none_or(&matches) && !self.exclude.as_ref().is_some_and(matches)
    }
}
