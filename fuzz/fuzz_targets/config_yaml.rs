//! A config document through `${env}` expansion and validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = otel_sidecar::components::parse_config(text, &|name| {
            (name == "SET").then(|| "1".to_string())
        });
    }
});
