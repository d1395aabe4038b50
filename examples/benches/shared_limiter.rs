//! The rate limiter on Redis against the in-memory limiter, in the same run:
//!
//! 1. the limiter's own time per login kind (admission and every slot the login awaits;
//!    the ending is sent without waiting), p50/p95/p99, one login at a time and 8 at once,
//!    on Redis over loopback with TLS and an ACL user, against `MemoryRateLimiter`; the
//!    round trips each kind awaits, and p99 per round trip (target <= 0.5 ms);
//! 2. connection + SCRAM logins per second through one gateway (`pgbench -C`, 8 clients,
//!    10 s, loopback clients made subject to the limits) with each limiter.
//!
//! Run: `cargo bench -p auth-examples --bench shared_limiter`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::rate_limit::{Ending, LimitSettings, Subject};
use auth_core::{MemoryRateLimiter, RateLimiter};
use auth_redis::{RedisOptions, RedisRateLimiter};
use auth_tests::gateway::GatewayProcess;
use auth_tests::pki::run_ca;
use auth_tests::postgres::pgbench_connections;
use auth_tests::redis::Redis;
use auth_tests::stats::p50_p95_p99;
use secrecy::SecretString;

#[derive(Clone, Copy)]
enum Kind {
    /// The credential arrives with the first message: Basic, cleartext, a bearer token
    /// that names its user, GSSAPI's one token.
    OneMessage,
    /// SCRAM: the proof comes after a round trip to the client.
    Scram,
    /// Nobody named yet (a bearer token before validation): no slot.
    NoUser,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::OneMessage => "one message (Basic, cleartext, bearer, GSSAPI)",
            Self::Scram => "SCRAM (proof after a round trip)",
            Self::NoUser => "no user named (bearer before validation)",
        }
    }
}

/// One login's limiter work; the time the login waited on the limiter.
async fn login(l: &dyn RateLimiter, kind: Kind, user: &str, ip: &str) -> Duration {
    let subject = Subject {
        user: match kind {
            Kind::NoUser => None,
            _ => Some(user),
        },
        address: ip.parse().ok(),
        localhost: false,
    };
    let start = Instant::now();
    let r = match l.try_admit(&subject) {
        Some(a) => a,
        None => l.admit(&subject).await,
    }
    .unwrap();
    r.verify(Duration::from_secs(5)).await.unwrap();
    let mut waited = start.elapsed();
    if let Kind::Scram = kind {
        r.pause();
        let again = Instant::now();
        r.resume(Duration::from_secs(5)).await.unwrap();
        waited += again.elapsed();
    }
    r.finish(Ending::Succeeded);
    waited
}

/// Latencies of `n` logins by each of `tasks` tasks at once (each its own user and
/// address).
async fn run(l: Arc<dyn RateLimiter>, kind: Kind, tasks: usize, n: usize) -> Vec<Duration> {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let l = l.clone();
            tokio::spawn(async move {
                let user = format!("bench{t}");
                let ip = format!("198.51.100.{}", t + 1);
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(login(&*l, kind, &user, &ip).await);
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn limiter_latency(redis: &Redis) {
    let options = RedisOptions::new(&redis.url())
        .unwrap()
        .with_ca_pem(std::fs::read(redis.ca_file().unwrap()).unwrap())
        .with_user(
            redis.acl_user().unwrap(),
            SecretString::from(redis.acl_password().unwrap().to_owned()),
        )
        .with_key_prefix("bench");
    println!(
        "== the limiter's time per login (admission and awaited slots), Redis 7 over loopback TLS vs in memory"
    );
    for kind in [Kind::OneMessage, Kind::Scram, Kind::NoUser] {
        for tasks in [1usize, 8] {
            let memory: Arc<dyn RateLimiter> =
                Arc::new(MemoryRateLimiter::new(LimitSettings::default()));
            let on_redis = RedisRateLimiter::connect(options.clone(), LimitSettings::default())
                .await
                .unwrap();
            let n = 4000 / tasks;
            // Warm-up: connections, the script cache, the allocator.
            let _ = run(memory.clone(), kind, tasks, 200).await;
            let shared: Arc<dyn RateLimiter> = Arc::new(on_redis.clone());
            let _ = run(shared.clone(), kind, tasks, 200).await;
            let before = on_redis.steps();
            let mut m = run(memory, kind, tasks, n).await;
            let started = Instant::now();
            let mut r = run(shared, kind, tasks, n).await;
            let elapsed = started.elapsed();
            let after = on_redis.steps();
            let logins = (tasks * n) as f64;
            let awaited = (after.awaited - before.awaited) as f64 / logins;
            let pipelines = (after.pipelines - before.pipelines) as f64 / logins;
            let (m50, m95, m99) = p50_p95_p99(&mut m);
            let (r50, r95, r99) = p50_p95_p99(&mut r);
            println!("{} — {tasks} at once", kind.name());
            println!(
                "  memory: p50 {:>7.1} us  p95 {:>7.1} us  p99 {:>7.1} us",
                us(m50),
                us(m95),
                us(m99)
            );
            println!(
                "  redis:  p50 {:>7.1} us  p95 {:>7.1} us  p99 {:>7.1} us  ({:.2} awaited steps and {:.2} pipelines per login; {:.0} logins/s)",
                us(r50),
                us(r95),
                us(r99),
                awaited,
                pipelines,
                logins / elapsed.as_secs_f64()
            );
            println!(
                "  redis p99 per awaited round trip: {:.1} us (target <= 500 us); redis/memory p50 {:.0}x",
                us(r99) / awaited.max(1.0),
                us(r50) / us(m50).max(0.001)
            );
        }
    }
}

fn gateway_logins(redis: &Redis) {
    println!(
        "\n== connection + SCRAM logins through one gateway: pgbench -C -c 8 -j 2 -T 10, SELECT 1, no TLS, loopback clients limited"
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("select1.sql");
    std::fs::write(&script, "SELECT 1;\n").unwrap();
    let rules = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n\n[rate_limit]\nexempt_localhost = false\n";
    let with_redis = format!(
        "{rules}\n[redis]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_REDIS_PASSWORD\"\nca_file = \"{}\"\n",
        redis.url(),
        redis.acl_user().unwrap(),
        redis.ca_file().unwrap().display()
    );
    let env = [(
        "BENCH_REDIS_PASSWORD".to_owned(),
        redis.acl_password().unwrap().to_owned(),
    )];
    let mut tps = Vec::new();
    for (name, config) in [("in memory", rules.to_owned()), ("on Redis", with_redis)] {
        let gw = GatewayProcess::start_with_env(binary, "60s", &config, &env)
            .unwrap_or_else(|e| panic!("{e}"));
        let run = pgbench_connections(
            &gw.conninfo("demo", "sslmode=disable"),
            &[("PGPASSWORD".to_owned(), gw.demo_password.clone())],
            10,
            &script,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "limiter {name:<9}: {:>8.1} tps, average connection time {:.3} ms",
            run.tps, run.connect_ms
        );
        tps.push(run.tps);
    }
    println!(
        "ratio: on Redis {:.2}x the in-memory limiter's login rate",
        tps[1] / tps[0]
    );
}

fn main() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(limiter_latency(&redis));
    let stats = redis.command(&["INFO", "commandstats"]).unwrap();
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_eval")) {
        println!("Redis's own time: {line}");
    }
    gateway_logins(&redis);
}
