//! An attacker who can write the wallet file but not read the master key: a record put
//! back from an older copy, two records swapped, one removed, one added by hand. Each is
//! refused when the file is opened, naming the record. Real files, edited as an attacker
//! would: the JSON changed, the header left as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use auth_core::{CredentialStore, Key, Precondition, StoreError};
use auth_wallet::{FileStore, MasterKey, Wallet};
use serde_json::Value;

fn key(name: &str) -> Key {
    Key::new(name).unwrap()
}

/// A wallet file with `user/alice` (written twice: version 2) and `user/bob`, its
/// master key, and the file as it was after alice's first write.
async fn wallet_file() -> (tempfile::TempDir, PathBuf, MasterKey, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    let master = MasterKey::generate().unwrap();
    let wallet = Wallet::open_file(&path, master.clone()).await.unwrap();
    let put = |name: &'static str, value: &'static str| {
        let wallet = &wallet;
        async move {
            wallet
                .put(
                    &key(name),
                    value.as_bytes().to_vec().into(),
                    Precondition::None,
                )
                .await
                .unwrap()
        }
    };
    put("user/alice", r#"{"status":"active"}"#).await;
    put("user/bob", r#"{"status":"disabled"}"#).await;
    let older = std::fs::read_to_string(&path).unwrap();
    assert_eq!(put("user/alice", r#"{"status":"disabled"}"#).await, 2);
    drop(wallet);
    (dir, path, master, older)
}

fn split(text: &str) -> (&str, Value) {
    let (header, json) = text.split_once('\n').unwrap();
    (header, serde_json::from_str(json).unwrap())
}

/// Changes the file's JSON, keeping its header: what someone without the key can do.
fn edit(path: &Path, change: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let (header, mut json) = split(&text);
    let records = json["records"].as_object_mut().unwrap();
    change(records);
    std::fs::write(path, format!("{header}\n{json}")).unwrap();
}

/// Opens the wallet the way the gateway does, which must refuse it.
async fn refusal(path: &Path, master: &MasterKey) -> String {
    match Wallet::open_file(path, master.clone()).await {
        Ok(_) => panic!("a tampered wallet file was opened"),
        Err(e @ StoreError::Corrupted(_)) => {
            let message = e.to_string();
            assert!(message.contains("authctl import"), "{message}");
            message
        }
        Err(e) => panic!("refused as something else than tampering: {e}"),
    }
}

#[tokio::test]
async fn a_record_put_back_from_an_older_copy_is_refused_by_name() {
    let (_dir, path, master, older) = wallet_file().await;
    // A wallet already open sees it at its next read too, not only a fresh open.
    let running = Wallet::open_file(&path, master.clone()).await.unwrap();
    assert!(running.get(&key("user/bob")).await.unwrap().is_some());

    let (_, old) = split(&older);
    edit(&path, |records| {
        records.insert("user/alice".into(), old["records"]["user/alice"].clone());
    });
    let message = refusal(&path, &master).await;
    assert!(
        message.contains(
            "record `user/alice` was replaced by an older copy (version 1, the wallet wrote 2)"
        ),
        "{message}"
    );
    let err = running.get(&key("user/bob")).await.unwrap_err().to_string();
    assert!(err.contains("record `user/alice` was replaced"), "{err}");
}

#[tokio::test]
async fn two_records_swapped_are_refused_by_name() {
    let (_dir, path, master, _) = wallet_file().await;
    edit(&path, |records| {
        let alice = records.remove("user/alice").unwrap();
        let bob = records.remove("user/bob").unwrap();
        records.insert("user/alice".into(), bob);
        records.insert("user/bob".into(), alice);
    });
    let message = refusal(&path, &master).await;
    for name in ["user/alice", "user/bob"] {
        assert!(
            message.contains(&format!(
                "record `{name}` was altered or moved from another name"
            )),
            "{message}"
        );
    }
}

#[tokio::test]
async fn only_the_values_swapped_is_refused_too() {
    let (_dir, path, master, _) = wallet_file().await;
    edit(&path, |records| {
        let alice = records["user/alice"]["value"].clone();
        let bob = records["user/bob"]["value"].clone();
        records["user/alice"]["value"] = bob;
        records["user/bob"]["value"] = alice;
    });
    let message = refusal(&path, &master).await;
    assert!(
        message.contains("record `user/bob` was altered or moved from another name"),
        "{message}"
    );
}

#[tokio::test]
async fn a_removed_record_is_refused_by_name() {
    let (_dir, path, master, _) = wallet_file().await;
    edit(&path, |records| {
        records.remove("user/bob");
    });
    let message = refusal(&path, &master).await;
    assert!(
        message.contains("record `user/bob` was removed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_record_added_by_hand_is_refused_by_name() {
    let (_dir, path, master, _) = wallet_file().await;
    edit(&path, |records| {
        let alice = records["user/alice"].clone();
        records.insert("user/mallory".into(), alice);
    });
    let message = refusal(&path, &master).await;
    assert!(
        message.contains("record `user/mallory` was added outside the wallet"),
        "{message}"
    );
}

#[tokio::test]
async fn a_deleted_record_put_back_is_refused_by_name() {
    let (_dir, path, master, older) = wallet_file().await;
    let wallet = Wallet::open_file(&path, master.clone()).await.unwrap();
    assert!(
        wallet
            .delete(&key("user/bob"), Precondition::None)
            .await
            .unwrap()
    );
    drop(wallet);
    let (_, old) = split(&older);
    edit(&path, |records| {
        records.insert("user/bob".into(), old["records"]["user/bob"].clone());
    });
    let message = refusal(&path, &master).await;
    assert!(
        message.contains(
            "record `user/bob` was deleted by the wallet (at version 1) and put back outside it"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn the_list_of_records_edited_is_refused() {
    let (_dir, path, master, _) = wallet_file().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let (header, mut json) = split(&text);
    json["manifest"]["user/alice"] = 1.into();
    std::fs::write(&path, format!("{header}\n{json}")).unwrap();
    let message = refusal(&path, &master).await;
    assert!(
        message.contains(&format!(
            "does not authenticate under master key {}",
            master.fingerprint()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn without_the_key_or_with_another_the_file_is_not_read() {
    let (_dir, path, master, _) = wallet_file().await;
    let unkeyed = FileStore::new(&path).get(&key("user/bob")).await;
    let err = unkeyed.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("authenticated with the master key") && err.contains("with_mac_key"),
        "{err}"
    );
    let other = MasterKey::generate().unwrap();
    let err = Wallet::open_file(&path, other)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "authenticated under master key {}, which is not loaded",
            master.fingerprint()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_rekey_authenticates_the_file_under_the_new_key() {
    let (_dir, path, old, _) = wallet_file().await;
    let wallet = Wallet::open_file(&path, old.clone()).await.unwrap();
    let new = MasterKey::generate().unwrap();
    let (wallet, counts) = wallet.rekey(new.clone()).await.unwrap();
    assert_eq!(counts.records, 2);
    let bob = wallet.get(&key("user/bob")).await.unwrap().unwrap();
    assert_eq!(bob.value_str(), Some(r#"{"status":"disabled"}"#));
    drop(wallet);

    let reopened = Wallet::open_file(&path, new.clone()).await.unwrap();
    let alice = reopened.get(&key("user/alice")).await.unwrap().unwrap();
    assert_eq!(alice.value_str(), Some(r#"{"status":"disabled"}"#));
    drop(reopened);
    let err = Wallet::open_file(&path, old).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("under master key {}", new.fingerprint())),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_from_another_wallet_under_the_same_key_does_not_lend_records() {
    let (_dir, path, master, _) = wallet_file().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_path = other_dir.path().join("wallet.db");
    let other = Wallet::open_file(&other_path, master.clone())
        .await
        .unwrap();
    for name in ["user/alice", "user/bob"] {
        other
            .put(&key(name), b"other".to_vec().into(), Precondition::None)
            .await
            .unwrap();
    }
    other
        .put(
            &key("user/alice"),
            b"other".to_vec().into(),
            Precondition::None,
        )
        .await
        .unwrap();
    drop(other);
    // Same names at the same versions, MACs under the same key: only the file's own
    // random name in every MAC tells them apart.
    let (_, foreign) = split(&std::fs::read_to_string(&other_path).unwrap());
    edit(&path, |records| {
        records.insert("user/bob".into(), foreign["records"]["user/bob"].clone());
    });
    let message = refusal(&path, &master).await;
    assert!(
        message.contains("record `user/bob` was altered or moved from another name"),
        "{message}"
    );
}
