//! A data point's labels as a sorted vector of borrowed-or-owned strings: keys and string values
//! borrow from the decoded batch, so grouping a point costs one allocation instead of two per
//! label plus a tree node (the translation's largest cost in the profile).

use crate::pipeline::view::{KeyValuesView, ValueView};
use std::borrow::Cow;

/// Label key → value, sorted by key, one value per key (the last one given wins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// An attribute value as CloudWatch dimension text; strings are borrowed. No value, or an
/// empty one, is "".
pub fn attribute_text(value: Option<ValueView<'_>>) -> Cow<'_, str> {
    match value {
        Some(ValueView::Str(s)) => Cow::Borrowed(s),
        Some(ValueView::Int(i)) => Cow::Owned(i.to_string()),
        Some(ValueView::Double(d)) => Cow::Owned(d.to_string()),
        Some(ValueView::Bool(b)) => Cow::Borrowed(if b { "true" } else { "false" }),
        Some(ValueView::Empty) | None => Cow::Borrowed(""),
        Some(other) => Cow::Owned(crate::pipeline::values::value_json(other).to_string()),
    }
}

impl<'a> Labels<'a> {
    /// The attributes as labels; for a repeated key the last value wins.
    pub fn from_attributes(attributes: impl Into<KeyValuesView<'a>>, extra: usize) -> Self {
        let attributes = attributes.into();
        // Room for a point's usual handful without counting first: counting an encoded list
        // walks its bytes once more.
        let capacity = match attributes {
            KeyValuesView::Owned(list) => list.len(),
            KeyValuesView::Encoded { .. } => 8,
        };
        let mut pairs = Vec::with_capacity(capacity + extra);
        pairs.extend(
            attributes
                .entries()
                .map(|(key, value)| (Cow::Borrowed(key), attribute_text(value))),
        );
        Self::from_pairs_vec(pairs)
    }

    fn from_pairs_vec(mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Self {
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return Labels(pairs);
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // Stable sort: of equal keys the last given is last; keep it.
        let mut kept: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match kept.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => kept.push(pair),
            }
        }
        Labels(kept)
    }

    /// Labels from plain pairs (tests, benches).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<Cow<'a, str>>,
        V: Into<Cow<'a, str>>,
    {
        Self::from_pairs_vec(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        // A point has a handful of labels: comparing for equality (lengths first) beats the
        // ordered comparisons of a binary search, which showed as memcmp in the budget's profile.
        if self.0.len() <= 16 {
            return self
                .0
                .iter()
                .find(|(k, _)| k.as_ref() == key)
                .map(|(_, v)| v.as_ref());
        }
        self.position(key).ok().map(|i| self.0[i].1.as_ref())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets a label, replacing any value it had.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        let key = key.into();
        match self.position(&key) {
            Ok(i) => self.0[i].1 = value.into(),
            Err(i) => self.0.insert(i, (key, value.into())),
        }
    }

    /// Sets a label only when it has none. Takes the `Cow`s so borrowed text stays borrowed.
    #[allow(clippy::ptr_arg)]
    pub fn insert_if_absent(&mut self, key: &Cow<'a, str>, value: &Cow<'a, str>) {
        if let Err(i) = self.position(key) {
            self.0.insert(i, (key.clone(), value.clone()));
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Cow<'a, str>> {
        // As in `get`: every point is asked for its storage-resolution label, which it seldom has.
        let found = if self.0.len() <= 16 {
            self.0.iter().position(|(k, _)| k.as_ref() == key)
        } else {
            self.position(key).ok()
        };
        found.map(|i| self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    pub fn pairs(&self) -> &[(Cow<'a, str>, Cow<'a, str>)] {
        &self.0
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};

    fn kv(key: &str, value: Av) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn sorted_with_the_last_repeated_key_winning() {
        let attributes = [
            kv("b", Av::IntValue(7)),
            kv("a", Av::StringValue("first".into())),
            kv("c", Av::BoolValue(true)),
            kv("a", Av::StringValue("second".into())),
        ];
        let labels = Labels::from_attributes(&attributes[..], 0);
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("a", "second"), ("b", "7"), ("c", "true")]
        );
    }

    #[test]
    fn insert_replaces_and_keeps_the_order() {
        let mut labels = Labels::from_pairs([("m", "1"), ("x", "2")]);
        labels.insert("a", "0");
        labels.insert("m", "9");
        labels.insert_if_absent(&Cow::Borrowed("x"), &Cow::Borrowed("ignored"));
        labels.insert_if_absent(&Cow::Borrowed("z"), &Cow::Borrowed("3"));
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "m", "x", "z"]);
        assert_eq!(labels.get("m"), Some("9"));
        assert_eq!(labels.get("x"), Some("2"));
        assert_eq!(labels.remove("a").as_deref(), Some("0"));
        assert!(!labels.contains_key("a"));
        assert_eq!(labels.len(), 3);
    }
}
