//! A metric's CloudWatch identity as one 64-bit hash, and the map keyed by it.

use crate::exporters::awsemf::labels::Labels;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The OpenTelemetry SDK's overflow attribute.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";

/// Identities are already well-mixed 64-bit hashes: the map uses them as they are instead of
/// hashing them again (this is most of the admission cost on the hot path).
#[derive(Default)]
pub(super) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type IdentityMap<V> = hashbrown::HashMap<u64, V, BuildHasherDefault<PassThroughHasher>>;

/// Hashes a CloudWatch metric identity without allocating. The seed is fixed: every sidecar of
/// a fleet must give one metric the same identity to share a budget.
#[derive(Clone)]
pub struct IdentityHasher(foldhash::fast::FixedState);

impl Default for IdentityHasher {
    fn default() -> Self {
        IdentityHasher(foldhash::fast::FixedState::with_seed(0x6f74_656c_7369_6465))
    }
}

impl IdentityHasher {
    /// The identity of `metric` under one dimension set with the point's label values.
    pub fn identity(
        &self,
        namespace: &str,
        metric: &str,
        set: &[&str],
        labels: &Labels<'_>,
    ) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(namespace.as_bytes());
        h.write_u8(0);
        h.write(metric.as_bytes());
        for key in set {
            h.write_u8(0);
            h.write(key.as_bytes());
            h.write_u8(b'=');
            h.write(labels.get(key).map(str::as_bytes).unwrap_or_default());
        }
        h.finish()
    }

    /// One label value, to count a key's distinct values.
    pub(super) fn value_hash(&self, value: &str) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(value.as_bytes());
        h.finish()
    }

    pub(super) fn overflow_identity(&self, namespace: &str, metric: &str) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(namespace.as_bytes());
        h.write_u8(0);
        h.write(metric.as_bytes());
        h.write_u8(0);
        h.write(OVERFLOW_KEY.as_bytes());
        h.write(b"=true");
        h.finish()
    }
}
