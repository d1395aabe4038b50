//! A wallet written by auth-wallet before the authenticated format (the committed fixture
//! `fixtures/wallet-v1`: users alice and bob, the OAuth client secret, and carol's secret
//! written and deleted) is migrated once and reads back the same; a v1 file put over a
//! migrated wallet is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use auth_core::account::UserStatus;
use auth_core::{CredentialStore, Directory, Key, Precondition, Role};
use auth_wallet::envelope::{self, Format};
use auth_wallet::{FileStore, MasterKey, OAUTH_CLIENT_SECRET_KEY, Wallet};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wallet-v1");
const V1: &str = "auth-wallet-file v1 sha256=";

/// The fixture copied to a scratch directory, and its master key (read as text: git
/// does not keep the key file's 0600).
fn fixture() -> (tempfile::TempDir, PathBuf, MasterKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    std::fs::copy(Path::new(FIXTURE).join("wallet.db"), &path).unwrap();
    let key = std::fs::read_to_string(Path::new(FIXTURE).join("master.key")).unwrap();
    (dir, path, MasterKey::parse(&key).unwrap())
}

fn marker(path: &Path) -> PathBuf {
    path.with_file_name("wallet.db.v2")
}

/// Every record's name and plaintext, read without counting as an access.
async fn contents(wallet: &Wallet) -> Vec<(String, Vec<u8>)> {
    let keys: Vec<Key> = wallet
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    let records = wallet.read_many(&keys).await.unwrap();
    keys.iter()
        .zip(records)
        .map(|(k, r)| {
            (
                k.as_str().to_owned(),
                r.unwrap().value.expose_secret().to_vec(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_v1_wallet_is_migrated_once_and_reads_back_the_same() {
    let (_dir, path, master) = fixture();
    assert!(std::fs::read_to_string(&path).unwrap().starts_with(V1));
    let before = contents(&Wallet::new(
        std::sync::Arc::new(FileStore::new(&path)),
        master.clone(),
    ))
    .await;
    assert_eq!(
        before.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [OAUTH_CLIENT_SECRET_KEY, "user/alice", "user/bob"]
    );

    let wallet = Wallet::open_file(&path, master.clone()).await.unwrap();
    let migrated = std::fs::read_to_string(&path).unwrap();
    assert!(
        migrated.starts_with("auth-wallet-file v2 key="),
        "{migrated}"
    );
    assert!(marker(&path).exists());
    assert_eq!(
        contents(&wallet).await,
        before,
        "every value reads back the same"
    );
    for (name, _) in &before {
        let sealed = wallet
            .backend()
            .get(&Key::new(name.as_str()).unwrap())
            .await;
        let sealed = sealed.unwrap().unwrap();
        assert!(
            matches!(
                envelope::format(sealed.value.expose_secret()),
                Ok(Format::Versioned { .. })
            ),
            "{name} resealed with its version"
        );
    }
    let directory = Directory::new(std::sync::Arc::new(wallet));
    let (alice, _) = directory.get("alice").await.unwrap().unwrap();
    assert_eq!(alice.roles, [Role::Dba]);
    assert!(alice.password_hash.unwrap().starts_with("$argon2id$"));
    let (bob, _) = directory.get("bob").await.unwrap().unwrap();
    assert_eq!(bob.status, UserStatus::Disabled);
    drop(directory);
    let migrated = std::fs::read(&path).unwrap();

    // Opened again: nothing to migrate, nothing rewritten.
    let store = FileStore::new(&path).with_mac_key(master.file_mac_key());
    assert!(!store.migrate().await.unwrap());
    let again = Wallet::over_file(FileStore::new(&path), master.clone());
    assert_eq!(again.migrate().await.unwrap().records, 0);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        migrated,
        "not migrated again"
    );
    let secret = again
        .get(&Key::new(OAUTH_CLIENT_SECRET_KEY).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.value_str(), Some("client-secret-v1"));

    // The deleted name's last version came along: created again, it continues above it.
    let carol = Key::new("pgwire-user-carol").unwrap();
    assert!(again.get(&carol).await.unwrap().is_none());
    let version = again
        .put(&carol, b"carol-again".to_vec().into(), Precondition::Absent)
        .await
        .unwrap();
    assert!(version > 1, "{version}");
    let read = again.get(&carol).await.unwrap().unwrap();
    assert_eq!(read.value_str(), Some("carol-again"));
}

#[tokio::test]
async fn a_v1_file_put_over_a_migrated_wallet_is_refused() {
    let (_dir, path, master) = fixture();
    let v1 = std::fs::read(&path).unwrap();
    drop(Wallet::open_file(&path, master.clone()).await.unwrap());
    std::fs::write(&path, &v1).unwrap();

    let err = Wallet::open_file(&path, master.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unauthenticated v1 format") && err.contains("downgrade"),
        "{err}"
    );
    // A store without the key refuses it as well, rather than writing over it.
    let unkeyed = FileStore::new(&path)
        .list("")
        .await
        .unwrap_err()
        .to_string();
    assert!(unkeyed.contains("downgrade"), "{unkeyed}");

    // Restoring a v1 backup on purpose takes removing the marker, as it says.
    assert!(
        std::fs::read_to_string(marker(&path))
            .unwrap()
            .contains("restore a v1 backup on purpose")
    );
    std::fs::remove_file(marker(&path)).unwrap();
    let restored = Wallet::open_file(&path, master).await.unwrap();
    assert_eq!(contents(&restored).await.len(), 3);
}

/// The migrated wallet's own records (sealed with their versions) in a v1 file, with a
/// checksum anyone can compute: the MACs stripped.
fn downgraded(v2: &str) -> String {
    let (_, json) = v2.split_once('\n').unwrap();
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut records = json["records"].as_object().unwrap().clone();
    for record in records.values_mut() {
        record.as_object_mut().unwrap().remove("mac");
    }
    let body = serde_json::json!({ "records": records, "deleted": json["deleted"] }).to_string();
    format!(
        "{V1}{}\n{body}",
        hex::encode(Sha256::digest(body.as_bytes()))
    )
}

#[tokio::test]
async fn a_v1_file_made_from_a_migrated_wallet_is_refused_without_the_marker() {
    let (_dir, path, master) = fixture();
    drop(Wallet::open_file(&path, master.clone()).await.unwrap());
    let v2 = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(marker(&path)).unwrap();
    std::fs::write(&path, downgraded(&v2)).unwrap();

    let err = Wallet::open_file(&path, master)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "unauthenticated v1 format but record `pgwire-oauth-client` is sealed with its version"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_migrated_wallet_file_removed_is_refused() {
    let (_dir, path, master) = fixture();
    drop(Wallet::open_file(&path, master.clone()).await.unwrap());
    std::fs::remove_file(&path).unwrap();
    let err = Wallet::open_file(&path, master)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is missing") && err.contains("it was removed"),
        "{err}"
    );
}
