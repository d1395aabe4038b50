//! SCRAM client-final messages (RFC 5802): channel binding, nonce, proof.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = auth_password::scram::parse_client_final(data);
});
