//! The request body reader (JSON, forms, multipart) on arbitrary bytes: it must answer with
//! fields or a 4xx, never panic. The first byte picks the content type.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The capped allocator: a reader that trusts a size in its input is a crash.
use tolk_fuzz as _;

const TYPES: [&str; 6] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=X",
    "multipart/form-data",
    "text/plain",
    "application/ld+json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[pick as usize % TYPES.len()];
    if let Err((status, _)) = tolk::serve::fuzz_body(content_type, "", body, 1 << 16) {
        assert!((400..500).contains(&status), "status {status}");
    }
});
