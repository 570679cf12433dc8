//! Task metadata documents (`/task`, `/task/stats`, the container document) through the
//! awsecscontainermetrics receiver's translation and the ecs detector. The input holds the
//! documents separated by a NUL byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let parse = |part: Option<&[u8]>| {
        part.and_then(|p| serde_json::from_slice::<Value>(p).ok())
            .unwrap_or(Value::Null)
    };
    let (task, stats, container) = (
        parse(parts.next()),
        parse(parts.next()),
        parse(parts.next()),
    );
    let _ = otel_sidecar::receivers::awsecscontainermetrics::translate(&task, &stats, 0);
    let _ = otel_sidecar::processors::resourcedetection::ecs::attributes(&container, &task);
});
