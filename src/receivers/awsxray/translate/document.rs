//! The fields of a segment document the translation reads, borrowed from the datagram.

use crate::xray::*;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Deserialize)]
pub(super) struct Header {
    pub(super) format: String,
    pub(super) version: i64,
}

/// The fields of a segment document the translation reads; the rest is ignored. Strings
/// borrow from the datagram where they hold no escapes: a segment is parsed, turned into a
/// span and dropped on the per-datagram path, so owned copies were allocations for nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SegmentDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) trace_id: Option<Text<'a>>,
    pub(super) start_time: Option<f64>,
    pub(super) end_time: Option<f64>,
    pub(super) in_progress: Option<bool>,
    #[serde(borrow)]
    pub(super) parent_id: Option<Text<'a>>,
    #[serde(rename = "type", borrow)]
    pub(super) kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) namespace: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) user: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) resource_arn: Option<Text<'a>>,
    pub(super) traced: Option<bool>,
    pub(super) error: Option<bool>,
    pub(super) fault: Option<bool>,
    pub(super) throttle: Option<bool>,
    pub(super) http: Option<HttpDoc>,
    pub(super) aws: Option<Map<String, Value>>,
    pub(super) sql: Option<SqlDoc>,
    pub(super) service: Option<ServiceDoc>,
    pub(super) cause: Option<Value>,
    #[serde(borrow)]
    pub(super) annotations: Option<Annotations<'a>>,
    pub(super) metadata: Option<Map<String, Value>>,
    #[serde(borrow)]
    pub(super) subsegments: Option<Vec<SegmentDoc<'a>>>,
}

/// A JSON string, borrowed from the datagram unless it had escapes. (`Option<Cow<str>>` with
/// `#[serde(borrow)]` still copies; a visitor of our own does not.)
#[derive(Debug, Clone)]
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An annotation's value: X-Ray keeps strings, numbers and booleans; anything else is skipped.
#[derive(Debug)]
pub(super) enum AnnotationValue<'a> {
    Number(f64),
    Text(Text<'a>),
    Bool(bool),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for AnnotationValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> serde::de::Visitor<'de> for ValueVisitor {
            type Value = AnnotationValue<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an annotation value")
            }
            fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Number(value as f64))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Number(value as f64))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Number(value))
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Text(Text(Cow::Borrowed(text))))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Text(Text(Cow::Owned(text.to_owned()))))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Text(Text(Cow::Owned(text))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Other)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                deserializer.deserialize_any(self)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnnotationValue::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnnotationValue::Other)
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Annotations by key, sorted, the last of duplicate keys winning: what a JSON object read
/// into a map gives, without a node and two strings per entry.
#[derive(Debug, Default)]
pub(super) struct Annotations<'a>(pub(super) Vec<(Text<'a>, AnnotationValue<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> serde::de::Visitor<'de> for MapVisitor {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of annotations")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Text<'de>, AnnotationValue<'de>)> = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                sort_keeping_last(&mut entries, |entry| &entry.0);
                Ok(Annotations(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HttpDoc {
    pub(super) request: Option<HttpRequestDoc>,
    pub(super) response: Option<HttpResponseDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HttpRequestDoc {
    pub(super) method: Option<String>,
    pub(super) client_ip: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) url: Option<String>,
    pub(super) x_forwarded_for: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HttpResponseDoc {
    pub(super) status: Option<i64>,
    pub(super) content_length: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SqlDoc {
    pub(super) url: Option<String>,
    pub(super) database_type: Option<String>,
    pub(super) sanitized_query: Option<String>,
    pub(super) user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ServiceDoc {
    pub(super) version: Option<String>,
}
