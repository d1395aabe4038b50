//! Chain overhead: an engine running a 4-link chain whose last link succeeds, against
//! calling that last authenticator directly. Cheap in-memory authenticators, so what is
//! measured is the engine and chain themselves (the offer, supports/authenticate dispatch,
//! control table, audit event construction, timeout wrapper). Prints ns per attempt at
//! p50/p95/p99 and the difference.
//!
//! Run: `cargo bench -p auth-core --bench chain_overhead`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use auth_core::audit::NullAuditSink;
use auth_core::rate_limit::LimitSettings;
use auth_core::{
    Attempt, Authenticator, Chain, ConnectionInfo, Credential, CredentialKind, Engine,
    MemoryRateLimiter, Outcome, Policy, Protocol, StandardSession, TracingAuditSink,
};
use auth_tests::stats::percentile as pct;

/// Declines by answering NotApplicable after `supports()` said yes: the most expensive
/// way for a link to abstain.
#[derive(Debug)]
struct Abstains(&'static str);

#[async_trait]
impl Authenticator for Abstains {
    fn name(&self) -> &str {
        self.0
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }
    async fn authenticate(&self, _: &mut Attempt) -> Outcome {
        Outcome::NotApplicable
    }
}

/// Accepts every password; with a directory, it also looks alice's account up first,
/// as a host without the engine's account stage would (the work any design does; the rest
/// is overhead).
#[derive(Debug)]
struct Accepts(Option<Arc<auth_core::Directory>>);

#[async_trait]
impl Authenticator for Accepts {
    fn name(&self) -> &str {
        "password"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }
    async fn authenticate(&self, a: &mut Attempt) -> Outcome {
        if let Some(directory) = &self.0 {
            let account = auth_core::Accounts::account(directory.as_ref(), "alice").await;
            assert!(matches!(account, Ok(Some(_))));
        }
        let user = a.user().unwrap_or_default();
        Outcome::Authenticated(
            StandardSession::new(user, "password", SystemTime::UNIX_EPOCH).boxed(),
        )
    }
}

/// Receives every event (so the engine builds each one) and only counts them.
#[derive(Debug, Default)]
struct CountingSink(std::sync::atomic::AtomicU64);

impl auth_core::AuditSink for CountingSink {
    fn record(&self, event: &auth_core::AuditEvent<'_>) {
        std::hint::black_box(event);
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

const BATCH: usize = 64;
const SAMPLES: usize = 4000;

/// What one attempt runs through.
#[derive(Clone, Copy)]
enum Runs<'a> {
    /// The authenticator alone.
    Direct(&'a dyn Authenticator),
    /// An engine, as an adapter calls it: the offer for the connection, then the decision.
    Engine(&'a Engine),
}

/// ns per attempt for each of SAMPLES batches of BATCH attempts.
fn measure(rt: &tokio::runtime::Runtime, runs: Runs<'_>) -> Vec<f64> {
    let mut attempt = Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.1:5000".parse().unwrap())
            .with_tls(auth_core::TlsInfo::default())
            .with_user("alice"),
        Credential::password("alice", "correct horse"),
    );
    let mut run = |n: usize| {
        rt.block_on(async {
            for _ in 0..n {
                let out = match runs {
                    Runs::Direct(auth) => auth.authenticate(&mut attempt).await,
                    Runs::Engine(engine) => {
                        let offer = engine.offer(&attempt.connection, None).unwrap();
                        engine.decide(&offer, &mut attempt).await
                    }
                };
                assert!(out.is_authenticated());
                std::hint::black_box(out);
            }
        });
    };
    // Warm up caches and the allocator.
    let warm_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm_until {
        run(BATCH);
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        run(BATCH);
        samples.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples
}

fn engine(audit: Arc<dyn auth_core::AuditSink>, limited: bool) -> Engine {
    engine_with(audit, limited, None)
}

/// The store-backed directory with alice's account, in memory.
fn directory(rt: &tokio::runtime::Runtime) -> Arc<auth_core::Directory> {
    let directory = auth_core::Directory::new(Arc::new(auth_core::MemoryStore::new()));
    rt.block_on(directory.update("alice", |r| r.roles = vec![auth_core::Role::User]))
        .unwrap();
    Arc::new(directory)
}

/// The account stage over [`directory`].
fn accounts(rt: &tokio::runtime::Runtime) -> Arc<auth_core::AccountStage> {
    Arc::new(auth_core::AccountStage::new(directory(rt)))
}

fn engine_with(
    audit: Arc<dyn auth_core::AuditSink>,
    limited: bool,
    accounts: Option<Arc<auth_core::AccountStage>>,
) -> Engine {
    let chain = Chain::builder()
        .link(Arc::new(Abstains("oauth")))
        .link(Arc::new(Abstains("kerberos")))
        .link(Arc::new(Abstains("wallet")))
        .link(Arc::new(Accepts(None)))
        .build();
    let mut b = Engine::builder(Policy::single(chain).unwrap()).audit(audit);
    if limited {
        b = b.rate_limiter(Arc::new(MemoryRateLimiter::new(LimitSettings::default())));
    }
    if let Some(stage) = accounts {
        b = b.accounts(stage);
    }
    b.build()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let direct = measure(&rt, Runs::Direct(&Accepts(None)));
    let variants: [(&str, Engine); 7] = [
        (
            "4-link chain, null audit (events skipped)",
            engine(Arc::new(NullAuditSink), false),
        ),
        (
            "4-link chain, every audit event built",
            engine(Arc::new(CountingSink::default()), false),
        ),
        (
            "4-link chain, tracing audit (no subscriber)",
            engine(Arc::new(TracingAuditSink), false),
        ),
        (
            "4-link chain, events built + rate limiter",
            engine(Arc::new(CountingSink::default()), true),
        ),
        (
            "  + account stage (directory in memory)",
            engine_with(Arc::new(CountingSink::default()), true, Some(accounts(&rt))),
        ),
        (
            "4-link chain, tracing audit + rate limiter",
            engine(Arc::new(TracingAuditSink), true),
        ),
        (
            "  + account stage (directory in memory)",
            engine_with(Arc::new(TracingAuditSink), true, Some(accounts(&rt))),
        ),
    ];
    println!("chain overhead: ns per attempt ({SAMPLES} samples of {BATCH} attempts)");
    println!("{:<46} {:>8} {:>8} {:>8}", "", "p50", "p95", "p99");
    let row = |name: &str, s: &[f64]| {
        println!(
            "{name:<46} {:>8.0} {:>8.0} {:>8.0}",
            pct(s, 0.50),
            pct(s, 0.95),
            pct(s, 0.99)
        );
    };
    row("direct call to the succeeding authenticator", &direct);
    // The account stage is compared with a host that looks the account up itself: the
    // lookup is work any design does; the rest is overhead.
    let looked_up = measure(&rt, Runs::Direct(&Accepts(Some(directory(&rt)))));
    row("direct call + the account lookup", &looked_up);
    let mut worst_p50 = 0.0f64;
    for (name, e) in &variants {
        let s = measure(&rt, Runs::Engine(e));
        row(name, &s);
        let (base, against) = if name.contains("account stage") {
            (&looked_up, "  overhead vs direct + lookup")
        } else {
            (&direct, "  overhead vs direct")
        };
        let d50 = pct(&s, 0.50) - pct(base, 0.50);
        let d99 = pct(&s, 0.99) - pct(base, 0.99);
        println!(
            "{:<46} {:>8.0} {:>8} {:>8.0}   ratio p50 {:.2}x",
            against,
            d50,
            "",
            d99,
            pct(&s, 0.50) / pct(base, 0.50)
        );
        worst_p50 = worst_p50.max(d50);
    }
    let verdict = if worst_p50 <= 1000.0 { "met" } else { "MISSED" };
    println!("target: <= 1000 ns overhead per attempt at p50: {verdict} (worst {worst_p50:.0} ns)");
    metrics_cost(&rt);
}

/// What the metrics cost an attempt: the null-audit engine with no recorder against the
/// same with metrics-exporter-prometheus's recorder (explicit histogram buckets), each
/// engine new so its handles are registered with the recorder in force. Interleaved five
/// times; the medians of the five p50s and p99s.
fn metrics_cost(rt: &tokio::runtime::Runtime) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(auth_core::metrics::DECISION_SECONDS.into()),
            auth_core::metrics::DECISION_BUCKETS,
        )
        .unwrap()
        .build_recorder();
    let (mut none, mut with) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let s = measure(rt, Runs::Engine(&engine(Arc::new(NullAuditSink), false)));
        none.push((pct(&s, 0.50), pct(&s, 0.99)));
        let s = metrics::with_local_recorder(&recorder, || {
            measure(rt, Runs::Engine(&engine(Arc::new(NullAuditSink), false)))
        });
        with.push((pct(&s, 0.50), pct(&s, 0.99)));
    }
    let median = |v: &mut Vec<(f64, f64)>| {
        let mut p50: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut p99: Vec<f64> = v.iter().map(|x| x.1).collect();
        p50.sort_by(f64::total_cmp);
        p99.sort_by(f64::total_cmp);
        (p50[2], p99[2])
    };
    let (n50, n99) = median(&mut none);
    let (w50, w99) = median(&mut with);
    println!();
    println!("metrics: ns per attempt, null audit, median of 5 interleaved runs");
    println!("{:<46} {:>8} {:>8}", "", "p50", "p99");
    println!("{:<46} {n50:>8.0} {n99:>8.0}", "no recorder");
    println!(
        "{:<46} {w50:>8.0} {w99:>8.0}",
        "prometheus recorder installed"
    );
    let (d50, d99) = (w50 - n50, w99 - n99);
    println!(
        "{:<46} {d50:>8.0} {d99:>8.0}   ratio p50 {:.2}x",
        "  cost of the metrics",
        w50 / n50
    );
    let verdict = if d50 <= 100.0 && d99 <= 100.0 {
        "met"
    } else {
        "MISSED"
    };
    println!("target: <= 100 ns per attempt with a recorder (p50 and p99): {verdict}");
}
