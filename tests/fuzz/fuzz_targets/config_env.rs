//! The gateway's configuration with the environment over it: the input's lines before a
//! `---` line are `AUTH_*=value` variables, the rest is `gateway.toml`; loaded as at
//! start-up, and when valid printed as `--check-config` prints it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (env, file) = text.split_once("\n---\n").unwrap_or(("", text));
    let vars = env.lines().filter_map(|l| {
        l.split_once('=')
            .map(|(k, v)| (format!("AUTH_{k}"), v.to_owned()))
    });
    if let Ok(loaded) =
        auth_examples::gateway::GatewayConfig::load("gateway.toml", file, vars)
    {
        let _ = loaded.config.to_toml();
    }
});
