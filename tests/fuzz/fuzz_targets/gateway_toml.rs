//! The gateway's `gateway.toml`: listen address, timeouts, rules, Kerberos mapping and
//! rate limits, validated as at start-up.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = auth_examples::gateway::GatewayConfig::parse(text);
    }
});
