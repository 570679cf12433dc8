//! `metric_declarations`: which metrics CloudWatch extracts, and with which dimension sets.
//! Regular expressions are unanchored, as the collector's RE2 ones are.

use super::labels::Labels;
use regex::Regex;
use serde::Deserialize;

/// CloudWatch allows 30 keys per dimension set (the collector drops declared sets over 10,
/// aws-otel-collector#3024; we accept what CloudWatch accepts).
const MAX_DECLARED_KEYS: usize = 30;

/// `metric_declarations[i]` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDeclarationConfig {
    #[serde(default)]
    pub dimensions: Vec<Vec<String>>,
    #[serde(default)]
    pub metric_name_selectors: Vec<String>,
    #[serde(default)]
    pub label_matchers: Vec<LabelMatcherConfig>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelMatcherConfig {
    pub label_names: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    pub regex: String,
}

fn default_separator() -> String {
    ";".into()
}

/// A validated declaration: decoded from [`MetricDeclarationConfig`] and compiled at start, so
/// a bad regular expression is refused with its YAML path (the collector panics on one).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "MetricDeclarationConfig")]
pub struct MetricDeclaration {
    /// As written, for `validate --print`.
    written: MetricDeclarationConfig,
    dimensions: Vec<Vec<String>>,
    selectors: Vec<Regex>,
    matchers: Vec<(Vec<String>, String, Regex)>,
}

impl TryFrom<MetricDeclarationConfig> for MetricDeclaration {
    type Error = String;

    fn try_from(config: MetricDeclarationConfig) -> Result<Self, String> {
        MetricDeclaration::compile(&config).map_err(|(key, message)| format!("{key}: {message}"))
    }
}

impl serde::Serialize for MetricDeclaration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

impl MetricDeclaration {
    /// Compiles and checks one declaration; errors carry the key below `metric_declarations[i]`.
    pub fn compile(config: &MetricDeclarationConfig) -> Result<Self, (String, String)> {
        if config.metric_name_selectors.is_empty() {
            return Err((
                "metric_name_selectors".into(),
                "must list at least one regular expression".into(),
            ));
        }
        let selectors = config
            .metric_name_selectors
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Regex::new(s).map_err(|e| (format!("metric_name_selectors[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut matchers = Vec::new();
        for (i, m) in config.label_matchers.iter().enumerate() {
            if m.label_names.is_empty() {
                return Err((
                    format!("label_matchers[{i}].label_names"),
                    "must not be empty".into(),
                ));
            }
            let regex = Regex::new(&m.regex)
                .map_err(|e| (format!("label_matchers[{i}].regex"), e.to_string()))?;
            matchers.push((m.label_names.clone(), m.separator.clone(), regex));
        }
        let mut dimensions: Vec<Vec<String>> = Vec::new();
        for (i, set) in config.dimensions.iter().enumerate() {
            if set.len() > MAX_DECLARED_KEYS {
                return Err((
                    format!("dimensions[{i}]"),
                    format!("at most {MAX_DECLARED_KEYS} keys per dimension set"),
                ));
            }
            let mut set = set.clone();
            set.sort();
            set.dedup();
            if !dimensions.contains(&set) {
                dimensions.push(set);
            }
        }
        Ok(MetricDeclaration {
            written: config.clone(),
            dimensions,
            selectors,
            matchers,
        })
    }

    /// Whether the declaration covers this metric with these labels.
    pub fn applies(&self, metric: &str, labels: &Labels<'_>) -> bool {
        let labels_match = self.matchers.is_empty()
            || self.matchers.iter().any(|(names, separator, regex)| {
                let joined: Vec<&str> = names.iter().map(|n| labels.get(n).unwrap_or("")).collect();
                regex.is_match(&joined.join(separator))
            });
        labels_match && self.selectors.iter().any(|s| s.is_match(metric))
    }

    /// Declared sets whose every key is a label.
    pub fn dimension_sets<'a>(
        &'a self,
        labels: &'a Labels<'_>,
    ) -> impl Iterator<Item = &'a Vec<String>> {
        self.dimensions
            .iter()
            .filter(|set| set.iter().all(|key| labels.contains_key(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(pairs: &[(&'a str, &'a str)]) -> Labels<'a> {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn declaration(yaml: &str) -> Result<MetricDeclaration, (String, String)> {
        MetricDeclaration::compile(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn selectors_and_label_matchers() {
        let d = declaration("dimensions: [[route, OTelLib], [route]]\nmetric_name_selectors: ['^api\\.']\nlabel_matchers: [{label_names: [env, team], regex: 'prod;core'}]").unwrap();
        let prod = labels(&[
            ("env", "prod"),
            ("team", "core"),
            ("route", "/a"),
            ("OTelLib", "x"),
        ]);
        assert!(d.applies("api.requests", &prod));
        assert!(!d.applies("db.requests", &prod));
        assert!(!d.applies("api.requests", &labels(&[("env", "dev"), ("team", "core")])));
        let sets: Vec<&Vec<String>> = d.dimension_sets(&prod).collect();
        assert_eq!(
            sets,
            vec![
                &vec!["OTelLib".to_string(), "route".to_string()],
                &vec!["route".to_string()]
            ]
        );
        assert_eq!(d.dimension_sets(&labels(&[("OTelLib", "x")])).count(), 0);
    }

    #[test]
    fn a_declaration_decodes_compiled_or_names_the_bad_key() {
        let decoded: MetricDeclaration = serde_yaml_ng::from_str(
            "dimensions: [[b, a], [a, b], [a, a, b]]\nmetric_name_selectors: [m]",
        )
        .unwrap();
        assert_eq!(
            decoded.dimensions,
            vec![vec!["a".to_string(), "b".to_string()]]
        );
        let error = serde_yaml_ng::from_str::<MetricDeclaration>("metric_name_selectors: ['(']")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("metric_name_selectors[0]: "), "{error}");
    }

    #[test]
    fn invalid_declarations_name_the_key() {
        assert_eq!(
            declaration("dimensions: [[a]]").unwrap_err().0,
            "metric_name_selectors"
        );
        assert_eq!(
            declaration("metric_name_selectors: ['(']").unwrap_err().0,
            "metric_name_selectors[0]"
        );
        assert_eq!(
            declaration(
                "metric_name_selectors: [a]\nlabel_matchers: [{label_names: [], regex: x}]"
            )
            .unwrap_err()
            .0,
            "label_matchers[0].label_names"
        );
        let many: Vec<String> = (0..31).map(|i| format!("k{i}")).collect();
        let yaml = format!(
            "metric_name_selectors: [a]\ndimensions: [[{}]]",
            many.join(",")
        );
        assert_eq!(declaration(&yaml).unwrap_err().0, "dimensions[0]");
    }
}
