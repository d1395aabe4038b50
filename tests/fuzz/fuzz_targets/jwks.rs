//! A JWKS document as an issuer serves it: every key parsed, unusable ones set aside.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = auth_oauth::key::parse_jwks(data);
});
