//! What a wrong guess costs, by kind of user: a user whose password is a wallet secret, a
//! user with a password hash, and a user that does not exist must be refused in the same
//! time, or a stranger learns which users exist and which can be guessed cheaply (PASS-3).
//!
//! Against the real `pg-gateway` (release build), from 127.0.0.1 (exempt from lockout), in
//! interleaved rounds: HTTP Basic on `/whoami` (raw HTTP/1.1) and pgwire cleartext
//! (tokio-postgres, `method = "password"`: the wallet's secret, then the password hash).
//! Prints p50/p95/p99 per case and the largest difference between the medians; the target
//! is 5 %.
//!
//! Run: `cargo bench -p auth-examples --bench rejection_cost`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::Path;
use std::time::{Duration, Instant};

use auth_core::{CredentialStore, Key, Precondition};
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{GatewayProcess, basic_refusal_time};

use auth_tests::stats::percentile as pct;
use secrecy::SecretString;

const RULES: &str = r#"danger_allow_cleartext_without_tls = true
# Both sides in plaintext, so the comparison is of the rejection, not of TLS.
api_tls = false

[[rule]]
name = "passwords"
method = "password"
"#;

const ROUNDS: usize = 60;
const CASES: [(&str, &str); 3] = [
    ("wallet user, wrong password", "walt"),
    ("hash user, wrong password", "hana"),
    ("unknown user", "nobody"),
];

async fn add_users(gw: &GatewayProcess) {
    let wallet = gw.wallet().unwrap_or_else(|e| panic!("{e}"));
    wallet
        .put(
            &Key::new("pgwire-user-walt").unwrap(),
            b"walt's wallet secret".to_vec().into(),
            Precondition::None,
        )
        .await
        .unwrap();
    let hasher = Hasher::new(Argon2Settings::default()).unwrap();
    Users::new(wallet)
        .set_password(
            &hasher,
            &PasswordPolicy::default(),
            "hana",
            &SecretString::from("hana's long password".to_owned()),
        )
        .await
        .unwrap();
}

async fn pg_cleartext(port: u16, user: &str) -> Duration {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} dbname={user} password='wrong guess' sslmode=disable"
    );
    let started = Instant::now();
    let refused = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await;
    let took = started.elapsed();
    let e = refused.err().expect("a wrong guess is refused");
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("28P01"),
        "{e}"
    );
    took
}

fn report(door: &str, samples: &mut [Vec<f64>; 3]) -> f64 {
    println!("\n{door}: ms per refused guess ({ROUNDS} each, interleaved)");
    println!("{:<32} {:>8} {:>8} {:>8}", "", "p50", "p95", "p99");
    let mut medians = Vec::new();
    for ((name, _), s) in CASES.iter().zip(samples.iter_mut()) {
        s.sort_by(f64::total_cmp);
        println!(
            "{name:<32} {:>8.2} {:>8.2} {:>8.2}",
            pct(s, 0.5),
            pct(s, 0.95),
            pct(s, 0.99)
        );
        medians.push(pct(s, 0.5));
    }
    let (lo, hi) = medians
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
    let spread = (hi / lo - 1.0) * 100.0;
    println!("largest difference between medians: {spread:.1} % (target <= 5 %)");
    spread
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start(binary, "60s", RULES).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(add_users(&gw));

    // Warm up every path once.
    for (_, user) in CASES {
        basic_refusal_time(gw.http_port, user);
        rt.block_on(pg_cleartext(gw.port, user));
    }
    let mut http: [Vec<f64>; 3] = Default::default();
    let mut pg: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (_, user)) in CASES.iter().enumerate() {
            http[i].push(basic_refusal_time(gw.http_port, user).as_secs_f64() * 1e3);
            pg[i].push(rt.block_on(pg_cleartext(gw.port, user)).as_secs_f64() * 1e3);
        }
    }
    let a = report("HTTP Basic", &mut http);
    let b = report("pgwire cleartext", &mut pg);
    let verdict = if a <= 5.0 && b <= 5.0 {
        "met"
    } else {
        "MISSED"
    };
    println!("\ntarget: medians within 5 % of each other on both doors: {verdict}");
}
