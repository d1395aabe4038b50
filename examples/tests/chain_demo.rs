//! The README's run command works as printed: the demo authenticates, refuses, audits and
//! locks out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn the_chain_demo_runs_and_shows_every_outcome() {
    let out = Command::new(env!("CARGO_BIN_EXE_chain-demo"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "=> authenticated as ci-runner via api_key",
        "=> refused: \"authentication failed\" (SQLSTATE 28P01, HTTP 401)",
        "=> refused: \"malformed credentials\" (SQLSTATE 08P01, HTTP 400)",
        "=> refused: \"authentication required\" (SQLSTATE 28000, HTTP 401)",
        "\"event\":\"policy_reject\"",
        "\"event\":\"lockout\"",
        "=> attempt 4: rate_limited",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 15, "{} audit events", events.len());
    for e in &events {
        for field in [
            "timestamp",
            "event",
            "source",
            "connection_id",
            "duration_us",
            "outcome",
        ] {
            assert!(e.get(field).is_some(), "event without {field}: {e}");
        }
    }
    // The demo's real key secret is 64 hex characters; none may be printed.
    assert!(
        !text.lines().any(|l| l
            .split(|c: char| !c.is_ascii_hexdigit())
            .any(|w| w.len() == 64 && !w.chars().all(|c| c == '0' || c == '1'))),
        "a key secret was printed"
    );
}
