//! A StatsD / DogStatsD packet: parsed line by line and aggregated, then flushed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_sidecar::receivers::statsd::aggregate::{AggregationSettings, Aggregator};

fuzz_target!(|data: &[u8]| {
    let mut aggregator = Aggregator::new(AggregationSettings::default(), 0);
    otel_sidecar::receivers::statsd::ingest(
        "fuzz",
        data,
        &mut aggregator,
        data.first() == Some(&b'#'),
    );
    let _ = aggregator.flush(1);
});
