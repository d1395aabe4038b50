//! HTTP Basic credentials (RFC 7617) as an Authorization header value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = auth_tower::parse_basic(header);
    }
});
