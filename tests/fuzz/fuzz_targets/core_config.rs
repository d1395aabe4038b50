//! auth-core's configuration file (methods, fallback, rate limits, per-method settings),
//! validated as at start-up, with an empty environment.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = auth_core::Config::load(Some(text), &HashMap::new());
    }
});
