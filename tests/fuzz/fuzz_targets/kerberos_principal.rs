//! A Kerberos principal name as the acceptor reports it, then the pg_ident-like mapping.
#![no_main]

use std::sync::LazyLock;

use auth_kerberos::{MapRule, Principal, PrincipalMapper};
use libfuzzer_sys::fuzz_target;

static MAPPER: LazyLock<PrincipalMapper> = LazyLock::new(|| PrincipalMapper {
    realms: vec!["EXAMPLE.COM".into()],
    rules: vec![MapRule::new(r"^([^/@]+)/admin@EXAMPLE\.COM$", r"\1_admin").unwrap()],
    ..PrincipalMapper::default()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(principal) = Principal::parse(text) {
        let _ = principal.without_realm();
        let _ = MAPPER.map(&principal);
    }
});
