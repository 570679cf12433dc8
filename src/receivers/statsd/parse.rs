//! StatsD / DogStatsD line parsing, allocation-free: a parsed line borrows from the datagram.
//! `name:value|type[|@rate][|#tag:v,...][|c:container][|Tunix]`. Other sections (`card:`,
//! `e:` that newer DogStatsD clients add, and any future one) are skipped and counted: the
//! line's value still counts.

/// The metric types otel-sidecar aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
    Set,
}

impl MetricKind {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "c" => MetricKind::Counter,
            "g" => MetricKind::Gauge,
            "ms" => MetricKind::Timer,
            "h" => MetricKind::Histogram,
            "d" => MetricKind::Distribution,
            "s" => MetricKind::Set,
            _ => return None,
        })
    }

    /// The `metric_type` attribute value under `enable_metric_type`.
    pub fn label(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Timer => "timing",
            MetricKind::Histogram => "histogram",
            MetricKind::Distribution => "distribution",
            MetricKind::Set => "set",
        }
    }
}

/// A metric value: numbers for most types, the member for sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LineValue<'a> {
    Number(f64),
    Member(&'a str),
}

/// One parsed line, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdLine<'a> {
    pub name: &'a str,
    pub value: LineValue<'a>,
    /// A leading `+` or `-` on a gauge: add to the current value instead of replacing it.
    pub signed: bool,
    pub kind: MetricKind,
    pub sample_rate: f64,
    /// The raw tag list (`k:v,k2:v2`), split lazily by [`tags`].
    pub tags: &'a str,
    pub container_id: Option<&'a str>,
    pub timestamp: Option<u64>,
    /// Sections the receiver does not use (`|card:low`, `|e:...`), skipped.
    pub ignored_sections: u32,
}

/// What a line was, when it was not a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineError {
    /// DogStatsD event (`_e{...}`) or service check (`_sc|...`): not metrics, skipped quietly.
    NotAMetric,
    MissingValue,
    EmptyName,
    BadValue,
    MissingType,
    UnsupportedType,
    BadSampleRate,
    BadTag,
    BadTimestamp,
}

impl LineError {
    /// Label value for the self-metric.
    pub fn reason(self) -> &'static str {
        match self {
            LineError::NotAMetric => "not_a_metric",
            LineError::MissingValue => "missing_value",
            LineError::EmptyName => "empty_name",
            LineError::BadValue => "bad_value",
            LineError::MissingType => "missing_type",
            LineError::UnsupportedType => "unsupported_type",
            LineError::BadSampleRate => "bad_sample_rate",
            LineError::BadTag => "bad_tag",
            LineError::BadTimestamp => "bad_timestamp",
        }
    }
}

/// Parses one line (without its newline; a trailing `\r` is tolerated).
pub fn parse_line(line: &str, simple_tags: bool) -> Result<StatsdLine<'_>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.starts_with("_e{") || line.starts_with("_sc|") {
        return Err(LineError::NotAMetric);
    }
    let mut sections = line.split('|');
    let head = sections.next().unwrap_or("");
    let (name, value_text) = head.split_once(':').ok_or(LineError::MissingValue)?;
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    if value_text.is_empty() {
        return Err(LineError::MissingValue);
    }
    let kind = MetricKind::parse(sections.next().ok_or(LineError::MissingType)?)
        .ok_or(LineError::UnsupportedType)?;
    let signed = matches!(value_text.as_bytes()[0], b'+' | b'-');
    let value = if kind == MetricKind::Set {
        LineValue::Member(value_text)
    } else {
        let number: f64 = value_text.parse().map_err(|_| LineError::BadValue)?;
        if !number.is_finite() {
            return Err(LineError::BadValue);
        }
        LineValue::Number(number)
    };
    let mut parsed = StatsdLine {
        name,
        value,
        signed,
        kind,
        sample_rate: 1.0,
        tags: "",
        container_id: None,
        timestamp: None,
        ignored_sections: 0,
    };
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            let rate: f64 = rate.parse().map_err(|_| LineError::BadSampleRate)?;
            if !(rate.is_finite() && rate > 0.0) {
                return Err(LineError::BadSampleRate);
            }
            // Only a rate strictly between 0 and 1 scales, as in the collector.
            if rate < 1.0 {
                parsed.sample_rate = rate;
            }
        } else if let Some(tags) = section.strip_prefix('#') {
            for tag in tags.split(',').filter(|t| !t.is_empty()) {
                match tag.split_once(':') {
                    Some(("", _)) => return Err(LineError::BadTag),
                    Some(_) => {}
                    None if simple_tags => {}
                    None => return Err(LineError::BadTag),
                }
            }
            parsed.tags = tags;
        } else if let Some(container) = section.strip_prefix("c:") {
            parsed.container_id = Some(container);
        } else if let Some(seconds) = section.strip_prefix('T') {
            if !matches!(kind, MetricKind::Counter | MetricKind::Gauge) {
                return Err(LineError::BadTimestamp);
            }
            parsed.timestamp = Some(seconds.parse().map_err(|_| LineError::BadTimestamp)?);
        } else {
            parsed.ignored_sections += 1;
        }
    }
    Ok(parsed)
}

/// The `(key, value)` pairs of a raw tag list; a simple tag has an empty value.
pub fn tags(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.split_once(':').unwrap_or((t, "")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use LineValue::*;
    use MetricKind::*;

    fn ok(line: &str) -> StatsdLine<'_> {
        parse_line(line, false).unwrap()
    }

    #[test]
    fn parses_every_type_and_section() {
        let l = ok("probe.hits:1|c");
        assert_eq!(
            (l.name, l.value, l.kind, l.sample_rate),
            ("probe.hits", Number(1.0), Counter, 1.0)
        );
        assert_eq!(ok("x:5|c|@0.5").sample_rate, 0.5);
        assert_eq!(ok("x:5|c|@2").sample_rate, 1.0, "rates >= 1 do not scale");
        assert_eq!(ok("probe.lat:12.300000|ms").value, Number(12.3));
        let g = ok("probe.depth:-2|g");
        assert_eq!((g.value, g.signed, g.kind), (Number(-2.0), true, Gauge));
        assert!(ok("probe.depth:+2|g").signed);
        assert!(!ok("probe.depth:2|g").signed);
        assert_eq!(ok("probe.users:u1|s").value, Member("u1"));
        assert_eq!(ok("h:1|h").kind, Histogram);
        assert_eq!(ok("d:1|d").kind, Distribution);
        let tagged = ok("dd.hits:1|c|#route:/a,code:200,env:test\r");
        assert_eq!(
            tags(tagged.tags).collect::<Vec<_>>(),
            vec![("route", "/a"), ("code", "200"), ("env", "test")]
        );
        let full = ok("x:1|c|@0.25|#a:b|c:abc123|T1700000000");
        assert_eq!(
            (full.container_id, full.timestamp),
            (Some("abc123"), Some(1_700_000_000))
        );
        assert_eq!(ok("x:1|c|#").tags, "");
    }

    /// hot-shots and the Datadog clients add `card:` (tag cardinality) and `e:` (external data)
    /// sections; the value and the sections we use are kept, the others counted.
    #[test]
    fn sections_we_do_not_use_are_skipped_and_counted() {
        let l = ok("api.hits:3|c|@0.5|#route:/a|c:abc|card:low|e:it-false,cn-api");
        assert_eq!(
            (l.value, l.kind, l.sample_rate, l.tags, l.container_id),
            (Number(3.0), Counter, 0.5, "route:/a", Some("abc"))
        );
        assert_eq!(l.ignored_sections, 2);
        assert_eq!(ok("x:1|g|?future").ignored_sections, 1);
        assert_eq!(ok("x:1|g|#a:b").ignored_sections, 0);
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        let cases = [
            ("_e{6,6}:deploy|v1 out|#a:b", LineError::NotAMetric),
            ("_sc|dd.ok|0|#x:y", LineError::NotAMetric),
            ("novalue", LineError::MissingValue),
            (":1|c", LineError::EmptyName),
            ("x:|c", LineError::MissingValue),
            ("x:abc|c", LineError::BadValue),
            ("x:NaN|g", LineError::BadValue),
            ("x:1", LineError::MissingType),
            ("x:1|zz", LineError::UnsupportedType),
            ("x:1|c|@0", LineError::BadSampleRate),
            ("x:1|c|@abc", LineError::BadSampleRate),
            ("x:1|c|#:v", LineError::BadTag),
            ("x:1|c|#novalue", LineError::BadTag),
            ("x:1|ms|T1700000000", LineError::BadTimestamp),
            ("x:1|c|Tsoon", LineError::BadTimestamp),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line, false), Err(want), "{line}");
        }
        assert!(
            parse_line("x:1|c|#simple", true).is_ok(),
            "enable_simple_tags"
        );
    }
}
