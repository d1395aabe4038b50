//! A whole server-side SCRAM exchange: `mechanism \0 client-first \0 client-final`, with
//! and without channel binding data, against a real verifier and the unknown-user mock.
#![no_main]

use std::sync::LazyLock;

use auth_password::scram::{ScramExchange, ScramVerifier};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<ScramVerifier> =
    LazyLock::new(|| ScramVerifier::compute("pencil", b"0123456789abcdef", 4096));
static MOCK: LazyLock<ScramVerifier> =
    LazyLock::new(|| ScramVerifier::compute("mock", b"fedcba9876543210", 4096));

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(mechanism), Some(first), Some(last)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let Ok(mechanism) = std::str::from_utf8(mechanism) else {
        return;
    };
    for binding in [None, Some(&b"tls-server-end-point-hash"[..])] {
        for verifier in [Some(VERIFIER.clone()), None] {
            if let Ok((exchange, _)) =
                ScramExchange::start(mechanism, first, binding, verifier, MOCK.clone(), "srvnonce")
            {
                let _ = exchange.finish(last);
            }
        }
    }
});
