//! A compact JWS as a bearer token: split, base64url, the header (with `crit` refused) and
//! the claims as JSON objects.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(decoded) = auth_oauth::token::decode(token) {
        let _ = decoded.header();
        let _ = decoded.claims();
    }
});
