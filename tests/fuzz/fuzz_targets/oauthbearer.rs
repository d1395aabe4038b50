//! An OAUTHBEARER (RFC 7628) initial response as the OAUTHBEARER authenticator reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(token)) = auth_oauth::fuzzing::oauthbearer_initial(data) {
        // Whatever reaches a validator is an RFC 6750 b64token: `=` only at the end.
        let body = token.trim_end_matches('=');
        assert!(!body.is_empty());
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        );
    }
});
