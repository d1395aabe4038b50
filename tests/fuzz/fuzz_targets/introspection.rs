//! An RFC 7662 introspection answer as the introspection authenticator reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = auth_oauth::fuzzing::introspection_answer(data);
});
