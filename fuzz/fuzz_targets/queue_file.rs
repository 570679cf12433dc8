//! A persistent queue file read back at start (a crash can leave any bytes there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use otel_sidecar::exporters::persistent_queue::{decode, encode};
    if let Ok(payload) = decode(data) {
        // Whatever decodes is written back the same way (bytes compared: NaN != NaN).
        let again = encode(&payload);
        let reread = decode(&again).expect("a file just written reads back");
        assert_eq!(encode(&reread), again);
    }
});
