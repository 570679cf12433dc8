//! The sampling proxy's decision on a request line: method and path from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (method, path) = text.split_once(' ').unwrap_or((&text, "/"));
    if let Ok(method) = hyper::Method::from_bytes(method.as_bytes()) {
        let _ = otel_sidecar::receivers::awsxray::proxy::is_sampling_request(&method, path);
    }
});
