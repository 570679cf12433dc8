//! StatsD aggregation must not allocate per line for a series it already has (issue 4). A
//! counting allocator around the system one shows it.

use otel_sidecar::receivers::statsd::aggregate::{AggregationSettings, Aggregator};
use otel_sidecar::receivers::statsd::parse::parse_line;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn existing_series_cost_no_allocation() {
    let lines: Vec<String> = (0..100)
        .flat_map(|i| {
            [
                format!("api.requests:1|c|#route:/r{i},code:200"),
                format!("api.latency:{}|ms|@0.5|#route:/r{i}", i % 40),
                format!("api.depth:+{i}|g"),
                format!("api.users:u{}|s", i % 3),
            ]
        })
        .collect();
    let mut aggregator = Aggregator::new(AggregationSettings::default(), 0);
    // Warm up: every series and every histogram bucket exists afterwards.
    for _ in 0..2 {
        for line in &lines {
            aggregator.add(&parse_line(line, false).unwrap(), 1);
        }
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        for line in &lines {
            aggregator.add(&parse_line(line, false).unwrap(), 2);
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for 40,000 lines of known series"
    );
    assert!(aggregator.flush(3).is_some());
}
