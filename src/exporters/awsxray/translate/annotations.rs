//! Annotations, metadata and the user: the attributes no other block consumed.

use super::*;

/// Every character outside `[A-Za-z0-9.]` becomes `_` (dots kept: gate `exporter.xray.allowDot`).
pub fn fix_annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn annotation_value(value: ValueView) -> Option<Value> {
    match value {
        ValueView::Str(_) | ValueView::Int(_) | ValueView::Double(_) | ValueView::Bool(_) => {
            Some(value_json(value))
        }
        _ => None,
    }
}

pub(super) type XRayAttributes<'a> = (String, Map<String, Value>, Metadata<'a>);

/// A JSON object's entries as metadata entries.
fn owned_entries<'a>(
    object: Map<String, Value>,
) -> impl Iterator<Item = (Cow<'a, str>, MetadataValue<'a>)> {
    object
        .into_iter()
        .map(|(key, value)| (Cow::Owned(key), MetadataValue::Json(value)))
}

pub(super) fn make_xray_attributes<'a>(
    mut remaining: Attributes<'a>,
    resource: &'a ResourceContext<'a>,
    store_resource: bool,
    settings: &TranslateSettings,
) -> XRayAttributes<'a> {
    let mut annotations = Map::new();
    let mut metadata = Metadata::new();
    let user = remaining
        .remove("enduser.id")
        .map(value_string)
        .unwrap_or_default();
    if remaining.is_empty() && (!store_resource || resource.metadata.is_empty()) {
        return (user, annotations, metadata);
    }
    let mut default_metadata = SortedMap::new();
    // The keys the span's X-Ray annotations came from, looked up where they are rather than
    // collected into a list per span.
    let annotation_keys = match remaining.remove(ANNOTATIONS_ATTRIBUTE) {
        Some(ValueView::Array(list)) => Some(list),
        _ => None,
    };
    let is_indexed = |key: &str| {
        settings.index_all_attributes
            || settings.indexed_attributes.iter().any(|k| k == key)
            || annotation_keys.is_some_and(|keys| {
                keys.iter()
                    .any(|v| matches!(v, ValueView::Str(s) if s == key))
            })
    };
    if store_resource {
        for (key, value) in &resource.metadata {
            let value = *value;
            // Indexed first: rendering an annotation only to drop it cost an allocation per
            // resource attribute per span.
            if is_indexed(key)
                && let Some(annotation) = annotation_value(value)
            {
                annotations.insert(fix_annotation_key(key), annotation);
            } else {
                default_metadata
                    .insert(Cow::Borrowed(key.as_str()), MetadataValue::Attribute(value));
            }
        }
    }
    for (key, value) in remaining.iter() {
        if is_indexed(key) {
            if let Some(annotation) = annotation_value(value) {
                annotations.insert(fix_annotation_key(key), annotation);
            }
            continue;
        }
        if let (Some(namespace), ValueView::Str(text)) = (key.strip_prefix(METADATA_PREFIX), value)
        {
            match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(object) if namespace.eq_ignore_ascii_case("default") => {
                    default_metadata.extend(owned_entries(object))
                }
                Ok(object) => {
                    metadata.insert(Cow::Borrowed(namespace), owned_entries(object).collect());
                }
                Err(_) => {
                    default_metadata.insert(Cow::Borrowed(key), MetadataValue::Attribute(value));
                }
            }
            continue;
        }
        default_metadata.insert(Cow::Borrowed(key), MetadataValue::Attribute(value));
    }
    if !default_metadata.is_empty() {
        metadata.insert(Cow::Borrowed("default"), default_metadata);
    }
    (user, annotations, metadata)
}
