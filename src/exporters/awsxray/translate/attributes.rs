//! A span's or resource's attributes as a sorted list of borrowed entries, and how their
//! values read as booleans and integers (as text and JSON: `crate::pipeline::values`).

use super::*;

/// Attributes by key, sorted, the last of duplicate keys winning (as a map built from the list
/// would). A sorted vector rather than a `BTreeMap`: spans carry a handful of attributes, and
/// the per-span path looks up twenty-odd known keys, where comparing lengths first beats
/// ordered string comparisons and a vector costs one allocation instead of a node per entry.
#[derive(Clone, Default)]
pub(super) struct Attributes<'a> {
    entries: Vec<(&'a str, ValueView<'a>)>,
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

pub(super) fn attributes<'a>(list: impl Into<KeyValuesView<'a>>) -> Attributes<'a> {
    let list = list.into();
    let mut entries: Vec<(&str, ValueView)> = Vec::with_capacity(match list {
        KeyValuesView::Owned(list) => list.len(),
        // Counting encoded entries would read them twice; most spans carry a handful.
        KeyValuesView::Encoded { .. } => 8,
    });
    entries.extend(list.iter());
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

    pub(super) fn get(&self, key: &str) -> Option<ValueView<'a>> {
        self.index(key).map(|i| self.entries[i].1)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<ValueView<'a>> {
        self.index(key).map(|i| self.entries.remove(i).1)
    }

    pub(super) fn insert(&mut self, key: &'a str, value: ValueView<'a>) {
        self.signatures |= key_signature(key);
        match self.position(key) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&'a str, ValueView<'a>)> + '_ {
        self.entries.iter().copied()
    }

    /// Keeps the attributes `keep` says to keep, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&'a str, ValueView<'a>) -> bool) {
        self.entries.retain(|(k, v)| keep(k, *v));
    }
}

pub(super) fn bool_of(value: ValueView) -> Option<bool> {
    match value {
        ValueView::Bool(b) => Some(b),
        _ => None,
    }
}

pub(super) fn int_of(value: ValueView) -> Option<i64> {
    match value {
        ValueView::Int(i) => Some(i),
        ValueView::Double(d) => Some(d as i64),
        ValueView::Str(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn str_attr(attrs: &Attributes, key: &str) -> String {
    attrs.get(key).map(value_string).unwrap_or_default()
}
