//! Dimension sets: the rollup's, the declarations', the 30-key limit, and the rendered sets
//! cached per label-key list.

use super::*;

/// The rollup's own dimension sets (without the full label set).
pub(super) fn rollup_sets<'k>(
    labels: &'k Labels<'_>,
    rollup: DimensionRollup,
) -> Vec<Vec<&'k str>> {
    let mut sets = Vec::new();
    let has_lib = labels.contains_key(OTEL_LIB);
    let others = labels.len() - usize::from(has_lib);
    // The zero set: `[OTelLib]`, or `[]` for a point without a scope name.
    if rollup == DimensionRollup::ZeroAndSingleDimensionRollup && others > 0 {
        sets.push(if has_lib { vec![OTEL_LIB] } else { Vec::new() });
    }
    if rollup != DimensionRollup::NoDimensionRollup {
        for other in labels.keys().filter(|k| *k != OTEL_LIB) {
            let set = match has_lib {
                false => vec![other],
                true if other < OTEL_LIB => vec![other, OTEL_LIB],
                true => vec![OTEL_LIB, other],
            };
            sets.push(set);
        }
    }
    sets
}

pub(super) fn push_unique<'k>(sets: &mut Vec<Vec<&'k str>>, set: Vec<&'k str>) {
    if !sets.contains(&set) {
        sets.push(set);
    }
}

/// The dimension sets of one label set under the rollup option: the full set first (unless a
/// rollup set already equals it, with one label besides OTelLib), as the collector writes them.
pub fn dimension_sets<'k>(labels: &'k Labels<'_>, rollup: DimensionRollup) -> Vec<Vec<&'k str>> {
    let full: Vec<&str> = labels.keys().collect();
    let rollups = rollup_sets(labels, rollup);
    let mut sets = Vec::with_capacity(rollups.len() + 1);
    if !rollups.contains(&full) {
        sets.push(full);
    }
    for set in rollups {
        push_unique(&mut sets, set);
    }
    sets
}

/// The dimension sets CloudWatch extracts for one metric, or `None` when no declaration
/// covers it. Sets over [`MAX_DIMENSIONS_PER_SET`] keys are left out and counted.
pub(super) fn metric_dimension_sets<'k>(
    metric: &str,
    labels: &'k Labels<'_>,
    settings: &'k EmfSettings,
    stats: &mut TranslateStats,
) -> Option<Vec<Vec<&'k str>>> {
    let mut candidates = if settings.declarations.is_empty() {
        dimension_sets(labels, settings.rollup)
    } else {
        let mut sets: Vec<Vec<&str>> = Vec::new();
        let mut covered = false;
        for declaration in settings
            .declarations
            .iter()
            .filter(|d| d.applies(metric, labels))
        {
            covered = true;
            sets.extend(
                declaration
                    .dimension_sets(labels)
                    .map(|set| set.iter().map(String::as_str).collect()),
            );
        }
        if !covered {
            return None;
        }
        // Rollup sets are appended to the declared ones, as in the collector.
        let mut unique: Vec<Vec<&str>> = Vec::new();
        for set in sets.into_iter().chain(rollup_sets(labels, settings.rollup)) {
            push_unique(&mut unique, set);
        }
        unique
    };
    let before = candidates.len();
    candidates.retain(|set| set.len() <= MAX_DIMENSIONS_PER_SET);
    stats.dimension_sets_over_limit += (before - candidates.len()) as u64;
    Some(candidates)
}

/// Dimension sets as escaped JSON, with the bytes the escaping added.
pub(super) fn render_dimensions(sets: &[Vec<&str>]) -> (Vec<u8>, usize) {
    let mut rendered = Vec::with_capacity(64);
    let mut writer = EventWriter {
        out: &mut rendered,
        added: 0,
    };
    writer.value(sets);
    let added = writer.added;
    (rendered, added)
}

/// A label-key list's dimension sets, rendered.
pub(super) struct CachedDimensions {
    pub(super) escaped: Vec<u8>,
    pub(super) added: usize,
    /// Sets left out for holding over [`MAX_DIMENSIONS_PER_SET`] keys.
    pub(super) over_limit: u64,
}

/// Rendered dimension sets by label-key list, for the common case where they depend on the
/// keys alone (no metric declarations, no budget): one rendering per key list and batch.
#[derive(Default)]
pub(super) struct DimensionsCache {
    pub(super) by_keys: hashbrown::HashMap<Box<[u8]>, CachedDimensions>,
    pub(super) lookup: Vec<u8>,
}

impl DimensionsCache {
    pub(super) fn get(
        &mut self,
        labels: &Labels<'_>,
        rollup: DimensionRollup,
    ) -> &CachedDimensions {
        self.lookup.clear();
        for key in labels.keys() {
            self.lookup
                .extend_from_slice(&(key.len() as u32).to_le_bytes());
            self.lookup.extend_from_slice(key.as_bytes());
        }
        self.by_keys.entry_ref(&self.lookup[..]).or_insert_with(|| {
            let mut sets = dimension_sets(labels, rollup);
            let before = sets.len();
            sets.retain(|set| set.len() <= MAX_DIMENSIONS_PER_SET);
            let (escaped, added) = render_dimensions(&sets);
            CachedDimensions {
                escaped,
                added,
                over_limit: (before - sets.len()) as u64,
            }
        })
    }
}
