//! Wallet read and write latency (p50/p95/p99) on the file and PostgreSQL backends, and the
//! time to re-key 10,000 secrets on each. The peer in the same run is the bare backend
//! without the wallet's encryption, so the ratio is the cost of sealing.
//!
//! Run: `cargo bench -p auth-wallet --bench wallet` (starts a throwaway PostgreSQL).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::{CredentialStore, Key, Precondition};
use auth_tests::postgres::Postgres;
use auth_tests::stats::percentile as pct;
use auth_wallet::{FileStore, MasterKey, PostgresStore, Wallet};

fn row(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    println!(
        "{name:<44} {:>10.1?} {:>10.1?} {:>10.1?}",
        pct(&samples, 0.5),
        pct(&samples, 0.95),
        pct(&samples, 0.99)
    );
    pct(&samples, 0.5)
}

async fn latency(label: &str, store: &dyn CredentialStore, n: usize) -> (Duration, Duration) {
    let tag: String = label.chars().filter(char::is_ascii_alphanumeric).collect();
    let keys: Vec<Key> = (0..100)
        .map(|i| Key::new(format!("bench/{tag}/{i}")).unwrap())
        .collect();
    let mut writes = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        store
            .put(
                &keys[i % keys.len()],
                format!("secret-value-{i}").into_bytes().into(),
                Precondition::None,
            )
            .await
            .unwrap();
        writes.push(t.elapsed());
    }
    let mut reads = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        assert!(store.get(&keys[i % keys.len()]).await.unwrap().is_some());
        reads.push(t.elapsed());
    }
    let w = row(&format!("{label}: write"), writes);
    let r = row(&format!("{label}: read"), reads);
    (w, r)
}

async fn rekey(label: &str, backend: Arc<dyn CredentialStore>) {
    let wallet = Wallet::new(backend.clone(), MasterKey::generate().unwrap());
    let items: Vec<_> = (0..10_000)
        .map(|i| {
            (
                Key::new(format!("rekey/{i:05}")).unwrap(),
                format!("secret-{i}").into_bytes().into(),
                Precondition::None,
            )
        })
        .collect();
    for chunk in items.chunks(1000) {
        let results = wallet.put_many(chunk.to_vec()).await.unwrap();
        assert!(results.iter().all(Result::is_ok));
    }
    let t = Instant::now();
    let (wallet, counts) = wallet.rekey(MasterKey::generate().unwrap()).await.unwrap();
    let took = t.elapsed();
    assert_eq!(counts.records, 10_000);
    assert_eq!(
        wallet
            .get(&Key::new("rekey/04242").unwrap())
            .await
            .unwrap()
            .unwrap()
            .value_str(),
        Some("secret-4242")
    );
    println!("{label}: rekey of 10,000 secrets: {took:.2?}");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("{:<44} {:>10} {:>10} {:>10}", "", "p50", "p95", "p99");
        let dir = tempfile::tempdir().unwrap();
        let file: Arc<dyn CredentialStore> =
            Arc::new(FileStore::new(dir.path().join("bench-wallet")));
        let (bare_w, bare_r) = latency("file, bare", file.as_ref(), 400).await;
        let wallet = Wallet::new(file.clone(), MasterKey::generate().unwrap());
        let (w, r) = latency("file, wallet", &wallet, 400).await;
        println!(
            "  wallet/bare p50: write {:.2}x, read {:.2}x",
            w.as_secs_f64() / bare_w.as_secs_f64(),
            r.as_secs_f64() / bare_r.as_secs_f64()
        );

        let pg = Postgres::start().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
        let store: Arc<dyn CredentialStore> = Arc::new(PostgresStore::connect(&url).await.unwrap());
        let (bare_w, bare_r) = latency("postgres, bare", store.as_ref(), 2000).await;
        let wallet = Wallet::new(store.clone(), MasterKey::generate().unwrap());
        let (w, r) = latency("postgres, wallet", &wallet, 2000).await;
        println!(
            "  wallet/bare p50: write {:.2}x, read {:.2}x",
            w.as_secs_f64() / bare_w.as_secs_f64(),
            r.as_secs_f64() / bare_r.as_secs_f64()
        );

        let file2 = tempfile::tempdir().unwrap();
        rekey(
            "file",
            Arc::new(FileStore::new(file2.path().join("rekey-wallet"))),
        )
        .await;
        // The wallet re-keys every record in its backend: clear the unsealed bench data.
        for m in store.list("bench/").await.unwrap() {
            store.delete(&m.key, Precondition::None).await.unwrap();
        }
        rekey("postgres", store).await;
    });
}
