//! An OAUTHBEARER (RFC 7628) initial response as the OAUTHBEARER authenticator reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(token)) = auth_oauth::fuzzing::oauthbearer_initial(data) {
        // A token is never empty and never longer than the message it came in.
        assert!(!token.is_empty() && token.len() <= data.len());
    }
});
