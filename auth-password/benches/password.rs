//! Password hashing, SCRAM and 1000 concurrent logins, with p50/p95/p99 and ratios against
//! peers measured in the same run:
//!
//! - argon2id verify: ours (per-thread reusable memory) vs the argon2 crate's own
//!   `PasswordVerifier` (a fresh 19 MiB allocation per call);
//! - 1000 concurrent logins through `PasswordAuthenticator` on a 2-worker multi-thread
//!   runtime vs plain OS threads (one per core) doing the same verifications, with the
//!   lateness of a 1 ms ping task running alongside and the peak RSS;
//! - response-time distributions of unknown user vs wrong password (password and SCRAM).
//!
//! Run: `cargo bench -p auth-password --bench password`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordVerifier};
use auth_core::{Authenticator, MemoryStore};
use auth_password::hash::{self, Argon2Settings, Scratch};
use auth_password::scram::{SCRAM_SHA_256, ScramExchange};
use auth_password::{
    Hasher, HashingPool, PasswordAuthenticator, PasswordPolicy, ScramAuthenticator, ScramVerifier,
    Users,
};
use auth_tests::scram_client::{Binding, scram_attempt};
use auth_tests::stats::percentile as pct;
use base64::Engine;
use secrecy::SecretString;

fn row(name: &str, mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort();
    println!(
        "{name:<48} {:>10.3?} {:>10.3?} {:>10.3?}  (n={})",
        pct(&samples, 0.5),
        pct(&samples, 0.95),
        pct(&samples, 0.99),
        samples.len()
    );
    samples
}

fn time<R>(n: usize, mut f: impl FnMut() -> R) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn per_operation() {
    println!(
        "\n== per operation ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<48} {:>10} {:>10} {:>10}", "", "p50", "p95", "p99");
    let settings = Argon2Settings::default();
    let mut scratch = Scratch::for_settings(&settings);
    let phc = hash::hash_argon2id(b"correct horse battery", &settings, &mut scratch).unwrap();
    row(
        "argon2id hash (m=19456,t=2,p=1)",
        time(30, || {
            hash::hash_argon2id(b"correct horse battery", &settings, &mut scratch)
        }),
    );
    let ours = row(
        "argon2id verify, ours (reused memory)",
        time(40, || {
            hash::verify(b"correct horse battery", &phc, &settings, &mut scratch)
        }),
    );
    let parsed = argon2::PasswordHash::new(&phc).unwrap();
    let theirs = row(
        "argon2id verify, argon2 crate PasswordVerifier",
        time(40, || {
            Argon2::default().verify_password(b"correct horse battery", &parsed)
        }),
    );
    println!(
        "  ratio ours/argon2-crate p50: {:.2}x (lower is faster)",
        pct(&ours, 0.5).as_secs_f64() / pct(&theirs, 0.5).as_secs_f64()
    );
    let bcrypt_hash = bcrypt::hash("correct horse battery", 12).unwrap();
    row(
        "bcrypt cost 12 verify",
        time(8, || bcrypt::verify("correct horse battery", &bcrypt_hash)),
    );

    // SCRAM server work per login: parse client-first, answer, parse client-final, check
    // the proof, sign; the RFC 7677 exchange with its fixed nonce.
    let salt = base64::engine::general_purpose::STANDARD
        .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
        .unwrap();
    let verifier = ScramVerifier::compute("pencil", &salt, 4096);
    let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    row(
        "SCRAM-SHA-256 server work per login",
        time(20_000, || {
            let (ex, _) = ScramExchange::start(
                SCRAM_SHA_256,
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                None,
                Some(verifier.clone()),
                verifier.clone(),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
            ex.finish(client_final).unwrap()
        }),
    );
    row(
        "SCRAM verifier creation (PBKDF2, 4096 iterations)",
        time(200, || ScramVerifier::compute("pencil", &salt, 4096)),
    );
}

fn concurrent_logins() {
    const LOGINS: usize = 1000;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = Argon2Settings::default();
    println!("\n== {LOGINS} concurrent logins (argon2id m=19456,t=2,p=1; {cores} hashing threads)");

    // Peer: plain OS threads, one per core, each with its own reusable memory.
    let mut scratch = Scratch::for_settings(&settings);
    let phc =
        Arc::new(hash::hash_argon2id(b"correct horse battery", &settings, &mut scratch).unwrap());
    drop(scratch);
    let started = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|i| {
            let phc = phc.clone();
            std::thread::spawn(move || {
                let mut scratch = Scratch::for_settings(&settings);
                let n = LOGINS / cores + usize::from(i < LOGINS % cores);
                for _ in 0..n {
                    assert!(
                        hash::verify(b"correct horse battery", &phc, &settings, &mut scratch)
                            .unwrap()
                            .matches
                    );
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let raw = started.elapsed();
    let raw_rate = LOGINS as f64 / raw.as_secs_f64();
    println!("OS threads:                 {raw_rate:>8.1} logins/s ({raw:.2?})");
    // Ours runs in a fresh process, so its peak RSS is its own and not what earlier
    // phases left in the allocator.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--concurrent-child", &raw_rate.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn concurrent_child(raw_rate: f64) {
    const LOGINS: usize = 1000;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = Argon2Settings::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let users = Users::new(Arc::new(MemoryStore::new()));
        let hasher = Hasher::with_pool(HashingPool::new(cores, &settings), settings).unwrap();
        users
            .set_password(&hasher, &PasswordPolicy::default(), "alice", &SecretString::from("correct horse battery".to_owned()))
            .await
            .unwrap();
        let auth = Arc::new(PasswordAuthenticator::new(users, hasher));
        let rss_before = peak_rss_kib();

        // A task that wants to run every millisecond; its lateness shows runtime stalls.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ping = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut lateness = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    lateness.push(t.elapsed().saturating_sub(Duration::from_millis(1)));
                }
                lateness
            })
        };
        let started = Instant::now();
        let logins: Vec<_> = (0..LOGINS)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move {
                    let mut attempt = auth_core::Attempt::new(
                        auth_core::ConnectionInfo::tcp(auth_core::Protocol::Postgres, "10.0.0.1:1".parse().unwrap()),
                        auth_core::Credential::password("alice", "correct horse battery"),
                    );
                    assert!(auth.authenticate(&mut attempt).await.is_authenticated());
                })
            })
            .collect();
        for l in logins {
            l.await.unwrap();
        }
        let ours = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut lateness = ping.await.unwrap();
        lateness.sort();
        let peak_mib = peak_rss_kib() as f64 / 1024.0;
        let rate = LOGINS as f64 / ours.as_secs_f64();
        println!("PasswordAuthenticator:      {rate:>8.1} logins/s ({ours:.2?})");
        println!(
            "  throughput ratio vs OS threads: {:.2}x (target >= 0.90)",
            rate / raw_rate
        );
        println!(
            "  1 ms ping lateness: p50 {:.3?} p95 {:.3?} p99 {:.3?} (target p99 < 5 ms, n={})",
            pct(&lateness, 0.5),
            pct(&lateness, 0.95),
            pct(&lateness, 0.99),
            lateness.len()
        );
        let budget = cores as f64 * 20.0 + 50.0;
        println!(
            "  peak RSS {peak_mib:.0} MiB (before the run {:.0} MiB; target <= {cores} x 20 + 50 = {budget:.0} MiB)",
            rss_before as f64 / 1024.0
        );
    });
}

fn timing_equality() {
    println!("\n== unknown user vs wrong password (response time)");
    println!("{:<48} {:>10} {:>10} {:>10}", "", "p50", "p95", "p99");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings = Argon2Settings::default();
        let users = Users::new(Arc::new(MemoryStore::new()));
        let hasher = Hasher::with_pool(HashingPool::new(1, &settings), settings).unwrap();
        users
            .set_password(
                &hasher,
                &PasswordPolicy::default(),
                "alice",
                &SecretString::from("correct horse battery".to_owned()),
            )
            .await
            .unwrap();
        let password = PasswordAuthenticator::new(users.clone(), hasher);
        let scram = ScramAuthenticator::new(users, [0x5A; 32]);
        for (label, is_scram) in [("password", false), ("SCRAM", true)] {
            let mut wrong = Vec::new();
            let mut unknown = Vec::new();
            let n = if is_scram { 300 } else { 60 };
            for i in 0..n {
                let user = if i % 2 == 0 { "alice" } else { "nobody" };
                let t = Instant::now();
                let out = if is_scram {
                    let (mut a, _) = scram_attempt(user, "wrong password", Binding::None, None);
                    scram.authenticate(&mut a).await
                } else {
                    let mut a = auth_core::Attempt::new(
                        auth_core::ConnectionInfo::tcp(
                            auth_core::Protocol::Postgres,
                            "10.0.0.1:1".parse().unwrap(),
                        ),
                        auth_core::Credential::password(user, "wrong password"),
                    );
                    password.authenticate(&mut a).await
                };
                assert!(!out.is_authenticated());
                if i % 2 == 0 {
                    wrong.push(t.elapsed())
                } else {
                    unknown.push(t.elapsed())
                }
            }
            let w = row(&format!("{label}: wrong password"), wrong);
            let u = row(&format!("{label}: unknown user"), unknown);
            let diff = (pct(&u, 0.5).as_secs_f64() / pct(&w, 0.5).as_secs_f64() - 1.0) * 100.0;
            println!("  median difference: {diff:+.1}% (target within 5%)");
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--concurrent-child") {
        concurrent_child(args[i + 1].parse().unwrap());
        return;
    }
    per_operation();
    concurrent_logins();
    timing_equality();
}
