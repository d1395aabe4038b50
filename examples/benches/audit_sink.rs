//! What the audit log costs a login (CORE-7, issue 35): API-key logins (cheap, so the
//! sink's share shows) through the engine, with the account stage and the wallet on a
//! file, 8 at once for 3 s per variant, with
//! - a null sink (events built, nothing written),
//! - [`AuditFile`] (written behind the login path) on the normal disk,
//! - [`AuditFile`] on a loop-mounted ext4 image mounted `-o sync` (every write waits for
//!   the device),
//! - and for contrast the synchronous [`JsonLinesAuditSink`] on the same `-o sync` disk.
//!
//! Prints logins per second and p50/p95/p99 latency per variant and the ratio against the
//! null sink measured in the same run; the target is within 5 %. The `-o sync` variants
//! need root (mount) and mkfs.ext4; without them they are reported as skipped.
//!
//! Run: `cargo bench -p auth-examples --bench audit_sink`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::account::{AccountStage, Directory};
use auth_core::api_key::ApiKeyGrant;
use auth_core::audit::{AuditEvent, AuditFile, AuditSink, JsonLinesAuditSink};
use auth_core::{
    ApiKeyAuthenticator, Attempt, Chain, ConnectionInfo, Credential, Engine, Outcome, Policy,
    Protocol, TlsInfo,
};
use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
use auth_tests::stats::percentile as pct;
use auth_wallet::{FileStore, MasterKey, Wallet};
use secrecy::{ExposeSecret, SecretString};

const CONCURRENCY: usize = 8;
const RUN: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, event: &AuditEvent<'_>) {
        std::hint::black_box(event);
    }
}

/// A loop-mounted ext4 image mounted `-o sync`, unmounted when dropped.
struct SyncDisk {
    dir: tempfile::TempDir,
    _image: tempfile::TempDir,
}

impl SyncDisk {
    fn mount() -> Option<Self> {
        let image_dir = tempfile::tempdir().ok()?;
        let image = image_dir.path().join("disk.img");
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        let made = ok(Command::new("truncate").args(["-s", "64M"]).arg(&image))
            && ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let dir = tempfile::tempdir().ok()?;
        let mounted = made
            && ok(Command::new("mount")
                .args(["-o", "loop,sync"])
                .arg(&image)
                .arg(dir.path()));
        mounted.then_some(Self {
            dir,
            _image: image_dir,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SyncDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

struct Setup {
    wallet: Arc<Wallet>,
    key: SecretString,
    hasher: Hasher,
    _dir: tempfile::TempDir,
}

/// Which logins a run makes.
#[derive(Clone, Copy)]
enum Login {
    ApiKey,
    Password,
}

const PASSWORD: &str = "alice's long password";

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Arc::new(Wallet::new(
        Arc::new(FileStore::new(dir.path().join("wallet.db"))),
        MasterKey::generate().unwrap(),
    ));
    Directory::new(wallet.clone())
        .update("alice", |_| {})
        .await
        .unwrap();
    let key = ApiKeyAuthenticator::register(
        wallet.as_ref(),
        "bench",
        &SecretString::from("a long enough api key secret, more than 32 characters".to_owned()),
        ApiKeyGrant {
            principal: "alice".into(),
            roles: Vec::new(),
            scopes: vec!["read".into()],
        },
    )
    .await
    .unwrap();
    let hasher = Hasher::new(Argon2Settings::default()).unwrap();
    Users::new(wallet.clone())
        .set_password(
            &hasher,
            &PasswordPolicy::default(),
            "alice",
            &SecretString::from(PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    Setup {
        wallet,
        key,
        hasher,
        _dir: dir,
    }
}

fn engine(setup: &Setup, audit: Arc<dyn AuditSink>) -> Arc<Engine> {
    let chain = Chain::builder()
        .link(Arc::new(ApiKeyAuthenticator::new(setup.wallet.clone())))
        .link(Arc::new(PasswordAuthenticator::new(
            Users::new(setup.wallet.clone()),
            setup.hasher.clone(),
        )))
        .build();
    Arc::new(
        Engine::builder(Policy::single(chain).unwrap())
            .audit(audit)
            .accounts(Arc::new(AccountStage::new(Arc::new(Directory::new(
                setup.wallet.clone(),
            )))))
            .build(),
    )
}

/// Logins per second and the latencies (ms) of `CONCURRENCY` loops for [`RUN`].
async fn measure(engine: Arc<Engine>, key: &SecretString, login: Login) -> (f64, Vec<f64>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let engine = engine.clone();
            let key = key.expose_secret().to_owned();
            tokio::spawn(async move {
                let mut took = Vec::new();
                let peer = format!("192.0.2.{}:5000", i + 1).parse().unwrap();
                while started.elapsed() < RUN {
                    let connection =
                        ConnectionInfo::tcp(Protocol::Http, peer).with_tls(TlsInfo::default());
                    let credential = match login {
                        Login::ApiKey => Credential::api_key(key.clone()),
                        Login::Password => Credential::password("alice", PASSWORD),
                    };
                    let mut attempt = Attempt::new(connection, credential);
                    let at = Instant::now();
                    let outcome = match engine.offer(&attempt.connection, attempt.credential.user())
                    {
                        Ok(offer) => engine.decide(&offer, &mut attempt).await,
                        Err(failure) => Outcome::Rejected(failure),
                    };
                    took.push(at.elapsed().as_secs_f64() * 1e3);
                    assert!(outcome.is_authenticated(), "{outcome:?}");
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (rate, all)
}

fn row(name: &str, (rate, took): &(f64, Vec<f64>), null: f64) {
    println!(
        "{name:<44} {rate:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        pct(took, 0.5),
        pct(took, 0.95),
        pct(took, 0.99),
        rate / null
    );
}

fn file_sink(dir: &Path) -> (Arc<AuditFile>, PathBuf) {
    let path = dir.join("audit.jsonl");
    (Arc::new(AuditFile::open(&path).unwrap()), path)
}

/// One table: every sink for `login`; the worst ratio of an [`AuditFile`] to the null sink.
fn table(rt: &tokio::runtime::Runtime, setup: &Setup, login: Login, title: &str) -> f64 {
    let disk = tempfile::tempdir().unwrap();
    let run =
        |sink: Arc<dyn AuditSink>| rt.block_on(measure(engine(setup, sink), &setup.key, login));
    run(Arc::new(NullSink));
    println!("\n{title}, {CONCURRENCY} at once, {} s each", RUN.as_secs());
    println!(
        "{:<44} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "audit sink", "logins/s", "p50 ms", "p95 ms", "p99 ms", "x null"
    );
    let null = run(Arc::new(NullSink));
    row("null sink", &null, null.0);
    let (file, _) = file_sink(disk.path());
    let normal = run(file.clone());
    file.flush();
    row("AuditFile, normal disk", &normal, null.0);
    let mut worst = normal.0 / null.0;
    match SyncDisk::mount() {
        Some(sync) => {
            let (file, _) = file_sink(sync.path());
            let behind = run(file.clone());
            row("AuditFile, ext4 -o sync", &behind, null.0);
            println!("  (events dropped on the sync disk: {})", file.dropped());
            worst = worst.min(behind.0 / null.0);
            file.flush();
            let path = sync.path().join("sync-audit.jsonl");
            let inline = JsonLinesAuditSink::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap(),
            );
            let sync_inline = run(Arc::new(inline));
            row(
                "JsonLinesAuditSink (inline), ext4 -o sync",
                &sync_inline,
                null.0,
            );
        }
        None => println!("ext4 -o sync: skipped (needs root, mount and mkfs.ext4)"),
    }
    worst
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(setup());
    let api = table(
        &rt,
        &setup,
        Login::ApiKey,
        "API-key logins through the engine",
    );
    let passwords = table(
        &rt,
        &setup,
        Login::Password,
        "Password logins (Argon2id defaults)",
    );
    let verdict = if passwords >= 0.95 { "met" } else { "MISSED" };
    println!(
        "\ntarget: AuditFile within 5 % of the null sink for password logins: {verdict} \
         (worst x{passwords:.3}; API-key logins, the worst case: x{api:.3})"
    );
}
