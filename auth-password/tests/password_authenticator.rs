//! The password authenticator: contract, rehash on login, account status, unknown users,
//! oversized input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use auth_core::contract::authenticator::{
    AuthenticatorCapabilities, AuthenticatorFixture, run_all,
};
use auth_core::secrecy::SecretSlice;
use auth_core::store::RecordMeta;
use auth_core::{
    AccountError, Authenticator, CredentialError, CredentialStore, Error, Key, ManualClock,
    MemoryStore, Outcome, Precondition, Record, StoreError,
};
use auth_password::{
    Argon2Settings, PasswordAuthenticator, PasswordPolicy, UserError, UserRecord, UserStatus, Users,
};
use common::{cheap, hasher, password_attempt, secret, users_with};

#[tokio::test]
async fn passes_the_authenticator_contract_with_owasp_parameters() {
    let ops = Arc::new(AtomicU64::new(0));
    let store = Arc::new(Counting {
        inner: MemoryStore::new(),
        ops: ops.clone(),
        meddle: None,
    });
    let users = Users::new(store);
    let hasher = hasher(Argon2Settings::default());
    users
        .set_password(
            &hasher,
            &PasswordPolicy::default(),
            "alice",
            &secret("correct horse battery"),
        )
        .await
        .unwrap();
    let auth = PasswordAuthenticator::new(users, hasher);
    let fixture = AuthenticatorFixture {
        valid: Arc::new(|| password_attempt("alice", "correct horse battery")),
        wrong_secret: Arc::new(|| password_attempt("alice", "incorrect horse battery")),
        unknown_principal: Arc::new(|| password_attempt("nobody", "correct horse battery")),
        foreign: Arc::new(|| {
            auth_core::Attempt::new(
                auth_core::ConnectionInfo::tcp(
                    auth_core::Protocol::Http,
                    "10.0.0.1:1".parse().unwrap(),
                ),
                auth_core::Credential::bearer("correct horse battery"),
            )
        }),
        principal: "alice".into(),
        secrets: vec![
            "correct horse battery".into(),
            "incorrect horse battery".into(),
        ],
    };
    let caps = AuthenticatorCapabilities {
        io_counter: Some(Arc::new(move || ops.load(Ordering::SeqCst))),
        concurrency: 8,
        ..AuthenticatorCapabilities::default()
    };
    run_all(&auth, &fixture, &caps).await;
}

#[tokio::test]
async fn a_legacy_bcrypt_hash_is_replaced_by_argon2id_on_login() {
    let (users, hasher) = users_with(&[], cheap()).await;
    let legacy = UserRecord {
        password_hash: Some(bcrypt::hash("legacy password", 4).unwrap()),
        roles: vec![auth_core::Role::Dba],
        ..UserRecord::default()
    };
    users
        .put("carol", &legacy, Precondition::Absent)
        .await
        .unwrap();
    let auth = PasswordAuthenticator::new(users.clone(), hasher);
    let out = auth
        .authenticate(&mut password_attempt("carol", "legacy password"))
        .await;
    assert!(out.is_authenticated());
    assert_eq!(out.session().unwrap().roles(), [auth_core::Role::Dba]);
    let (after, version) = users.get("carol").await.unwrap().unwrap();
    assert!(
        after
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
    );
    assert_eq!(
        after.roles,
        vec![auth_core::Role::Dba],
        "the rest of the record is kept"
    );
    assert_eq!(version, 2);
    // The new hash works, and a second login does not rewrite it.
    assert!(
        auth.authenticate(&mut password_attempt("carol", "legacy password"))
            .await
            .is_authenticated()
    );
    assert_eq!(users.get("carol").await.unwrap().unwrap().1, 2);
    // A wrong password never triggers a rewrite.
    let (users, hasher) = users_with(&[], cheap()).await;
    users
        .put("dave", &legacy, Precondition::Absent)
        .await
        .unwrap();
    let auth = PasswordAuthenticator::new(users.clone(), hasher);
    assert!(
        !auth
            .authenticate(&mut password_attempt("dave", "guess"))
            .await
            .is_authenticated()
    );
    assert_eq!(users.get("dave").await.unwrap().unwrap().1, 1);
}

#[tokio::test]
async fn outdated_argon2_parameters_are_upgraded() {
    let weak = Argon2Settings {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let (users, weak_hasher) = users_with(&[("erin", "erin's password")], weak).await;
    let auth = PasswordAuthenticator::new(users.clone(), hasher(cheap()));
    assert!(
        auth.authenticate(&mut password_attempt("erin", "erin's password"))
            .await
            .is_authenticated()
    );
    let hash = users
        .get("erin")
        .await
        .unwrap()
        .unwrap()
        .0
        .password_hash
        .unwrap();
    assert!(hash.contains("m=256,t=1,p=1"), "{hash}");
    drop(weak_hasher);
}

/// A store that counts operations and can change a record behind the authenticator's
/// back, right after its first read of it.
#[derive(Debug)]
struct Counting {
    inner: MemoryStore,
    ops: Arc<AtomicU64>,
    meddle: Option<(Key, Vec<u8>, AtomicUsize)>,
}

#[async_trait]
impl CredentialStore for Counting {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        let got = self.inner.get(key).await;
        if let Some((k, value, done)) = &self.meddle
            && k == key
            && done.fetch_add(1, Ordering::SeqCst) == 0
        {
            self.inner
                .put(key, value.clone().into(), Precondition::None)
                .await?;
        }
        got
    }
    async fn put(
        &self,
        key: &Key,
        value: SecretSlice<u8>,
        p: Precondition,
    ) -> Result<u64, StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, value, p).await
    }
    async fn delete(&self, key: &Key, p: Precondition) -> Result<bool, StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key, p).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix).await
    }
}

#[tokio::test]
async fn a_concurrent_change_wins_over_the_rehash() {
    let key = Key::new("user/frank").unwrap();
    let admins_change = serde_json::to_vec(&UserRecord {
        password_hash: Some("$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into()),
        ..UserRecord::default()
    })
    .unwrap();
    let store = Arc::new(Counting {
        inner: MemoryStore::new(),
        ops: Arc::new(AtomicU64::new(0)),
        meddle: Some((key.clone(), admins_change.clone(), AtomicUsize::new(0))),
    });
    let users = Users::new(store.clone());
    let legacy = UserRecord {
        password_hash: Some(bcrypt::hash("frank's old password", 4).unwrap()),
        ..UserRecord::default()
    };
    users
        .put("frank", &legacy, Precondition::Absent)
        .await
        .unwrap();
    let auth = PasswordAuthenticator::new(users.clone(), hasher(cheap()));
    // The login succeeds with the password it checked...
    assert!(
        auth.authenticate(&mut password_attempt("frank", "frank's old password"))
            .await
            .is_authenticated()
    );
    // ...but the administrator's change, made meanwhile, is what stays.
    let stored = store.inner.get(&key).await.unwrap().unwrap();
    assert_eq!(
        auth_core::secrecy::ExposeSecret::expose_secret(&stored.value),
        admins_change.as_slice()
    );
}

#[tokio::test]
async fn account_refused_comes_after_the_password_check() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let (users, hasher) = users_with(
        &[
            ("gina", "gina's password"),
            ("hank", "hank's password"),
            ("ivy", "ivy's password"),
        ],
        cheap(),
    )
    .await;
    users
        .update("gina", |r| r.status = UserStatus::Disabled)
        .await
        .unwrap();
    users
        .update("hank", |r| r.status = UserStatus::Locked)
        .await
        .unwrap();
    users
        .update("ivy", |r| r.password_expires = Some(1_000_100))
        .await
        .unwrap();
    let auth = PasswordAuthenticator::new(users.clone(), hasher);
    // The authenticator runs on its own here: each attempt is judged by the manual clock.
    let at = |user: &str, password: &str| {
        password_attempt(user, password).with_clock(Arc::new(clock.clone()))
    };
    let status = |o: &Outcome| match o {
        Outcome::AccountRefused { error, .. } => Some(*error),
        _ => None,
    };
    assert_eq!(
        status(&auth.authenticate(&mut at("gina", "gina's password")).await),
        Some(AccountError::Disabled)
    );
    assert_eq!(
        status(&auth.authenticate(&mut at("hank", "hank's password")).await),
        Some(AccountError::Locked)
    );
    assert_eq!(
        auth.authenticate(&mut at("gina", "wrong one"))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::Invalid),
        "a wrong password does not learn the account status"
    );
    assert!(
        auth.authenticate(&mut at("ivy", "ivy's password"))
            .await
            .is_authenticated()
    );
    clock.advance(Duration::from_secs(100));
    assert_eq!(
        status(&auth.authenticate(&mut at("ivy", "ivy's password")).await),
        Some(AccountError::Expired)
    );
    users
        .update("ivy", |r| r.status = UserStatus::Deleted)
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(&mut at("ivy", "ivy's password"))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::Invalid),
        "soft-deleted is unknown"
    );
}

#[tokio::test]
async fn a_ten_megabyte_password_is_refused_without_hashing() {
    let (users, hasher) =
        users_with(&[("jack", "jack's password")], Argon2Settings::default()).await;
    let auth = PasswordAuthenticator::new(users.clone(), hasher.clone());
    let huge = "x".repeat(10 * 1024 * 1024);
    let out = auth
        .authenticate(&mut password_attempt("jack", &huge))
        .await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
    assert!(
        out.failure()
            .unwrap()
            .detail
            .contains("longer than 4096 bytes")
    );
    // Setting one is refused by the policy with a message that says what to change.
    let err = users
        .set_password(&hasher, &PasswordPolicy::default(), "jack", &secret(&huge))
        .await
        .unwrap_err();
    let UserError::Weak(weak) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        weak.to_string(),
        "password refused: use at most 1024 characters"
    );
}

#[tokio::test]
async fn set_password_enforces_the_policy_and_names_that_cannot_be_keys() {
    let (users, hasher) = users_with(&[], cheap()).await;
    let err = users
        .set_password(
            &hasher,
            &PasswordPolicy::default(),
            "kim",
            &secret("password1"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10,000 most common"), "{err}");
    let err = users
        .set_password(
            &hasher,
            &PasswordPolicy::default(),
            "bad name/../x",
            &secret("a fine password"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::InvalidName));
    // A name that cannot be a key is simply unknown at login.
    let auth = PasswordAuthenticator::new(users, hasher);
    let out = auth
        .authenticate(&mut password_attempt("bad name/../x", "a fine password"))
        .await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
}

#[tokio::test]
async fn record_debug_hides_hashes() {
    let (users, _) = users_with(&[("liz", "liz's password")], cheap()).await;
    let (record, _) = users.get("liz").await.unwrap().unwrap();
    let shown = format!("{record:?}");
    assert!(
        !shown.contains("argon2") && !shown.contains("SCRAM-SHA-256$"),
        "{shown}"
    );
}

/// A coarse guard against user enumeration by timing; the benchmark reports the real
/// distributions. Fails only on a gross (2x) difference of medians.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_about_what_wrong_passwords_cost() {
    let (users, hasher) = users_with(&[("mia", "mia's password")], Argon2Settings::default()).await;
    let auth = PasswordAuthenticator::new(users, hasher);
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..30 {
        let (user, list) = if i % 2 == 0 {
            ("mia", &mut wrong)
        } else {
            ("nobody", &mut unknown)
        };
        let started = Instant::now();
        let out = auth
            .authenticate(&mut password_attempt(user, "not the password"))
            .await;
        list.push(started.elapsed());
        assert_eq!(
            out.failure().unwrap().error,
            Error::Credential(CredentialError::Invalid)
        );
    }
    wrong.sort();
    unknown.sort();
    let (w, u) = (wrong[wrong.len() / 2], unknown[unknown.len() / 2]);
    let ratio = w.as_secs_f64() / u.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "median wrong {w:?} vs unknown {u:?}"
    );
}
