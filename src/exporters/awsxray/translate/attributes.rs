//! A span's or resource's attributes as a sorted list of borrowed entries, and how their
//! values read as booleans and integers (as text and JSON: `crate::pipeline::values`).

use super::*;

/// Attributes by key, sorted, the last of duplicate keys winning (as a map built from the list
/// would). A sorted vector rather than a `BTreeMap`: spans carry a handful of attributes, and
/// the per-span path looks up twenty-odd known keys, where comparing lengths first beats
/// ordered string comparisons and a vector costs one allocation instead of a node per entry.
#[derive(Clone, Default)]
pub(super) struct Attributes<'a> {
    entries: Vec<(&'a str, &'a AnyValue)>,
    /// One bit per key signature ever inserted: most of the known keys the translation asks
    /// for are absent, and this answers those without comparing strings.
    signatures: u64,
}

/// A bit chosen by a key's length and first and last bytes.
pub(super) fn key_signature(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let (first, last) = match (bytes.first(), bytes.last()) {
        (Some(f), Some(l)) => (u64::from(*f), u64::from(*l)),
        _ => (0, 0),
    };
    let mixed = (bytes.len() as u64 | first << 16 | last << 24).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    1 << (mixed >> 58)
}

pub(super) fn attributes(list: &[KeyValue]) -> Attributes<'_> {
    let mut entries: Vec<(&str, &AnyValue)> = Vec::with_capacity(list.len());
    entries.extend(
        list.iter()
            .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.as_str(), v))),
    );
    if !entries.is_sorted_by(|a, b| a.0 < b.0) {
        sort_keeping_last(&mut entries, |entry| entry.0);
    }
    let signatures = entries
        .iter()
        .fold(0, |bits, (key, _)| bits | key_signature(key));
    Attributes {
        entries,
        signatures,
    }
}

impl<'a> Attributes<'a> {
    pub(super) fn position(&self, key: &str) -> Result<usize, usize> {
        if self.signatures & key_signature(key) == 0 {
            return Err(self.entries.partition_point(|(k, _)| *k < key));
        }
        self.entries.binary_search_by(|(k, _)| (*k).cmp(key))
    }

    pub(super) fn index(&self, key: &str) -> Option<usize> {
        if self.signatures & key_signature(key) == 0 {
            return None;
        }
        self.entries.iter().position(|(k, _)| *k == key)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.index(key).map(|i| self.entries[i].1)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<&'a AnyValue> {
        self.index(key).map(|i| self.entries.remove(i).1)
    }

    pub(super) fn insert(&mut self, key: &'a str, value: &'a AnyValue) {
        self.signatures |= key_signature(key);
        match self.position(key) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&'a str, &'a AnyValue)> + '_ {
        self.entries.iter().copied()
    }

    /// Keeps the attributes `keep` says to keep, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&'a str, &'a AnyValue) -> bool) {
        self.entries.retain(|(k, v)| keep(k, v));
    }
}

pub(super) fn bool_of(value: &AnyValue) -> Option<bool> {
    match value.value {
        Some(Av::BoolValue(b)) => Some(b),
        _ => None,
    }
}

pub(super) fn int_of(value: &AnyValue) -> Option<i64> {
    match &value.value {
        Some(Av::IntValue(i)) => Some(*i),
        Some(Av::DoubleValue(d)) => Some(*d as i64),
        Some(Av::StringValue(s)) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn str_attr(attrs: &Attributes, key: &str) -> String {
    attrs.get(key).map(value_string).unwrap_or_default()
}
