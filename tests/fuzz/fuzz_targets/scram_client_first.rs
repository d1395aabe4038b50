//! SCRAM client-first messages (RFC 5802): gs2 header, user name, nonce, extensions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = auth_password::scram::parse_client_first(data);
});
