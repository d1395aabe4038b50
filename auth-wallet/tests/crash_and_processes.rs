//! Crash safety and cross-process compare-and-set on the file backend. The test binary
//! re-runs itself as the writer process (`wallet_child` below, selected by environment).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use auth_core::{CredentialStore, Key, Precondition, StoreError};
use auth_wallet::{FileStore, MasterKey, Wallet};

const MODE: &str = "AUTH_WALLET_TEST_CHILD";
const PATH: &str = "AUTH_WALLET_TEST_PATH";
const KEY: &str = "AUTH_WALLET_TEST_KEY";

/// The authenticated format (v2): its MACs and marker are written under the same
/// crash-safety rules.
fn wallet(path: &str, key: &MasterKey) -> Wallet {
    Wallet::over_file(FileStore::new(path), key.clone())
}

async fn increment(w: &Wallet, key: &Key) -> usize {
    let mut conflicts = 0;
    loop {
        let (n, pre) = match w.get(key).await.unwrap() {
            Some(r) => (
                r.value_str().unwrap().parse::<u64>().unwrap(),
                Precondition::Version(r.meta.version),
            ),
            None => (0, Precondition::Absent),
        };
        match w
            .put(key, (n + 1).to_string().into_bytes().into(), pre)
            .await
        {
            Ok(_) => return conflicts,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
}

/// As a child process: the writer (`writer`: acknowledges each durable write on stdout,
/// forever) or a compare-and-set incrementer (`cas`: 25 increments). Run directly, it
/// checks a short stream of writes round-trips.
#[tokio::test]
async fn wallet_child() {
    let mode = std::env::var(MODE).unwrap_or_default();
    let scratch = tempfile::tempdir().unwrap();
    let (path, key) = match mode.as_str() {
        "" => (
            scratch.path().join("w").display().to_string(),
            MasterKey::generate().unwrap(),
        ),
        _ => (
            std::env::var(PATH).unwrap(),
            MasterKey::parse(&std::env::var(KEY).unwrap()).unwrap(),
        ),
    };
    let w = wallet(&path, &key);
    match mode.as_str() {
        "writer" => {
            let mut out = std::io::stdout().lock();
            for i in 0.. {
                let k = Key::new(format!("w-{i}")).unwrap();
                w.put(
                    &k,
                    format!("value-{i}").into_bytes().into(),
                    Precondition::None,
                )
                .await
                .unwrap();
                writeln!(out, "ack {i}").unwrap();
                out.flush().unwrap();
            }
        }
        "cas" => {
            let counter = Key::new("counter").unwrap();
            for _ in 0..25 {
                increment(&w, &counter).await;
            }
        }
        _ => {
            for i in 0..10 {
                let k = Key::new(format!("w-{i}")).unwrap();
                w.put(
                    &k,
                    format!("value-{i}").into_bytes().into(),
                    Precondition::None,
                )
                .await
                .unwrap();
            }
            for i in 0..10 {
                let k = Key::new(format!("w-{i}")).unwrap();
                assert_eq!(
                    w.get(&k).await.unwrap().unwrap().value_str(),
                    Some(format!("value-{i}").as_str())
                );
            }
        }
    }
}

fn child(mode: &str, path: &str, key: &MasterKey) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["wallet_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .env(PATH, path)
        .env(KEY, key.to_base64().as_str());
    cmd
}

#[tokio::test]
async fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet").display().to_string();
    let key = MasterKey::generate().unwrap();
    let mut acked: Vec<(usize, usize)> = Vec::new();
    for round in 0..12usize {
        let mut writer = child("writer", &path, &key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = writer.stdout.take().unwrap();
        let target = 2 + round * 3;
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                let n: usize = n.parse().unwrap();
                last = Some(n);
                if n >= target {
                    break;
                }
            }
        }
        // SIGKILL while it is in the middle of its next write.
        writer.kill().unwrap();
        writer.wait().unwrap();
        acked.push((round, last.expect("the writer acknowledged writes")));

        // Every acknowledged write of this round is there, intact; the file is valid.
        let w = wallet(&path, &key);
        for i in 0..=last.unwrap() {
            let k = Key::new(format!("w-{i}")).unwrap();
            let record = w
                .get(&k)
                .await
                .unwrap_or_else(|e| panic!("round {round}: w-{i}: {e}"));
            assert_eq!(
                record.unwrap().value_str(),
                Some(format!("value-{i}").as_str()),
                "round {round}"
            );
        }
        assert!(w.list("").await.unwrap().len() > last.unwrap());
    }
    println!("killed the writer after acks {acked:?}");
}

#[tokio::test]
async fn compare_and_set_across_processes_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet").display().to_string();
    let key = MasterKey::generate().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            child("cas", &path, &key)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let w = wallet(&path, &key);
    let counter = w.get(&Key::new("counter").unwrap()).await.unwrap().unwrap();
    assert_eq!(
        counter.value_str(),
        Some("100"),
        "4 processes x 25 increments"
    );
}
