//! Both backends, bare and under the wallet's encryption, pass the auth-core store
//! contract; the wallet authenticator passes the authenticator contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use auth_core::account::Directory;
use auth_core::contract::accounts::{
    AccountsFixture, run_all as run_accounts_suite, seed_directory,
};
use auth_core::contract::authenticator::{AuthenticatorCapabilities, AuthenticatorFixture};
use auth_core::contract::store::{StoreFixture, run_all};
use auth_core::{
    Attempt, ConnectionInfo, Credential, CredentialStore, Key, ManualClock, Precondition, Protocol,
};
use auth_tests::postgres::Postgres;
use auth_wallet::{FileStore, MasterKey, PostgresStore, Wallet, WalletAuthenticator};

#[tokio::test]
async fn the_file_store_passes_with_exact_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_fixed_epoch();
    let store = FileStore::new(dir.path().join("wallet")).with_clock(Arc::new(clock.clone()));
    run_all(&store, &StoreFixture::new("contract/").with_clock(clock)).await;
}

#[tokio::test]
async fn the_wallet_over_a_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::new(
        Arc::new(FileStore::new(dir.path().join("wallet"))),
        MasterKey::generate().unwrap(),
    );
    run_all(&wallet, &StoreFixture::new("contract/")).await;
    // The file holds no plaintext of what the suite wrote.
    let raw = std::fs::read(dir.path().join("wallet")).unwrap();
    assert!(!raw.windows(12).any(|w| w == b"s3cret-value"));
}

#[tokio::test]
async fn the_authenticated_file_store_passes_bare_and_under_the_wallet() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_fixed_epoch();
    let store = FileStore::new(dir.path().join("bare"))
        .with_mac_key(MasterKey::generate().unwrap().file_mac_key())
        .with_clock(Arc::new(clock.clone()));
    run_all(&store, &StoreFixture::new("contract/").with_clock(clock)).await;
    let wallet = Wallet::open_file(dir.path().join("wallet"), MasterKey::generate().unwrap())
        .await
        .unwrap();
    run_all(&wallet, &StoreFixture::new("contract/")).await;
    for file in ["bare", "wallet"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(text.starts_with("auth-wallet-file v2 key="), "{file}");
    }
}

#[tokio::test]
async fn postgres_passes_bare_and_under_the_wallet() {
    let pg = Postgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let clock = ManualClock::at_fixed_epoch();
    let store = PostgresStore::connect(&url)
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    run_all(&store, &StoreFixture::new("bare/").with_clock(clock)).await;
    // A second instance (its own pool, migrations already applied) shares the records.
    let other = PostgresStore::connect(&url).await.unwrap();
    let wallet = Wallet::new(Arc::new(other), MasterKey::generate().unwrap());
    run_all(&wallet, &StoreFixture::new("wallet/")).await;
    let raw = pg.psql("SELECT count(*) FROM auth_wallet_records WHERE value IS NOT NULL AND position('s3cret' in convert_from(value, 'SQL_ASCII')) > 0").unwrap();
    assert_eq!(raw, "0", "no plaintext in the table");
    // The user directory on the shared backend keeps the accounts contract.
    let directory = Directory::new(Arc::new(wallet));
    let fixture = AccountsFixture::standard("pg-");
    seed_directory(&directory, &fixture).await.unwrap();
    run_accounts_suite(Arc::new(directory), &fixture).await;
}

#[tokio::test]
async fn the_directory_in_a_wallet_file_passes_the_accounts_suite() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::new(
        Arc::new(FileStore::new(dir.path().join("wallet"))),
        MasterKey::generate().unwrap(),
    );
    let directory = Directory::new(Arc::new(wallet));
    let fixture = AccountsFixture::standard("file-");
    seed_directory(&directory, &fixture).await.unwrap();
    run_accounts_suite(Arc::new(directory), &fixture).await;
}

fn attempt(user: &str, password: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.1:1".parse().unwrap()),
        Credential::password(user, password),
    )
}

#[tokio::test]
async fn the_wallet_authenticator_passes_and_falls_through_for_unknown_users() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Arc::new(Wallet::new(
        Arc::new(FileStore::new(dir.path().join("w"))),
        MasterKey::generate().unwrap(),
    ));
    wallet
        .put(
            &Key::new("pgwire-user-alice").unwrap(),
            b"alice wallet secret".to_vec().into(),
            Precondition::None,
        )
        .await
        .unwrap();
    let auth = WalletAuthenticator::new(wallet.clone());
    let fixture = AuthenticatorFixture {
        valid: Arc::new(|| attempt("alice", "alice wallet secret")),
        wrong_secret: Arc::new(|| attempt("alice", "alice wallet secreT")),
        unknown_principal: Arc::new(|| attempt("zed", "alice wallet secret")),
        foreign: Arc::new(|| {
            Attempt::new(
                ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
                Credential::bearer("alice wallet secret"),
            )
        }),
        principal: "alice".into(),
        secrets: vec!["alice wallet secret".into(), "alice wallet secreT".into()],
    };
    auth_core::contract::authenticator::run_all(
        &auth,
        &fixture,
        &AuthenticatorCapabilities::default(),
    )
    .await;
    // "Not in wallet" is not-applicable, so a chain moves on to the next method.
    use auth_core::Authenticator;
    assert!(matches!(
        auth.authenticate(&mut attempt("zed", "x")).await,
        auth_core::Outcome::NotApplicable
    ));
    // Every check recorded an access.
    let meta = wallet.list("pgwire-user-").await.unwrap();
    assert!(meta[0].last_accessed.is_some());
}

#[tokio::test]
async fn every_access_is_audited_by_key_name_never_value() {
    let dir = tempfile::tempdir().unwrap();
    let audit = auth_core::MemoryAuditSink::new();
    let wallet = Wallet::new(
        Arc::new(FileStore::new(dir.path().join("w"))),
        MasterKey::generate().unwrap(),
    )
    .with_audit(Arc::new(audit.clone()));
    let key = Key::new("pgwire-oauth-client").unwrap();
    wallet
        .put(
            &key,
            b"the-client-secret".to_vec().into(),
            Precondition::None,
        )
        .await
        .unwrap();
    wallet.get(&key).await.unwrap();
    wallet.get(&Key::new("missing").unwrap()).await.unwrap();
    wallet.delete(&key, Precondition::None).await.unwrap();
    let events = audit.of_kind(auth_core::AuditEventKind::SecretAccess);
    let details: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["detail"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        details,
        [
            ("write pgwire-oauth-client".into(), "success".into()),
            ("read pgwire-oauth-client".into(), "success".into()),
            ("read missing".into(), "not_found".into()),
            ("delete pgwire-oauth-client".into(), "success".into()),
        ]
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("the-client-secret")
    );
}

#[tokio::test]
async fn a_failing_backend_makes_the_wallet_authenticator_unavailable() {
    use auth_core::Authenticator;
    let dir = tempfile::tempdir().unwrap();
    // The "file" is a directory: every read fails.
    let wallet = Wallet::new(
        Arc::new(FileStore::new(dir.path())),
        MasterKey::generate().unwrap(),
    );
    let auth = WalletAuthenticator::new(Arc::new(wallet));
    let out = auth.authenticate(&mut attempt("alice", "pw")).await;
    assert_eq!(out.class(), auth_core::OutcomeClass::Unavailable, "{out:?}");
}

#[tokio::test]
async fn the_wallet_reaches_postgres_over_tls_with_verify_full_and_refuses_another_ca() {
    let pg = Postgres::start_with_tls("trust").unwrap_or_else(|e| panic!("{e}"));
    let ca = pg.ca_file().unwrap();
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    // The libpq URL parameters, and the CA as an argument: both verify the certificate
    // and the host name (127.0.0.1 is in the certificate).
    let by_url = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());
    let store = PostgresStore::connect(&by_url).await.unwrap();
    let verified = PostgresStore::connect_verified(&base, &ca).await.unwrap();
    let wallet = Wallet::new(Arc::new(verified), MasterKey::generate().unwrap());
    run_all(&wallet, &StoreFixture::new("tls/")).await;
    let key = Key::new("tls-probe").unwrap();
    store
        .put(
            &key,
            auth_core::secrecy::SecretSlice::from(b"over tls".to_vec()),
            Precondition::None,
        )
        .await
        .unwrap();
    assert!(store.get(&key).await.unwrap().is_some());
    // The server sees the pools' connections as TLS.
    let tls = pg
        .psql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.client_addr IS NOT NULL")
        .unwrap();
    assert!(tls.parse::<u32>().unwrap() >= 2, "TLS connections: {tls}");

    // A CA that did not sign the server's certificate: refused, saying why.
    let dir = tempfile::tempdir().unwrap();
    let other = auth_tests::pki::TestCa::new("another CA", dir.path()).unwrap();
    let wrong = other.write_ca("other.crt").unwrap();
    let err = PostgresStore::connect_verified(&base, &wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "the refusal names the certificate: {err}"
    );
    // By name as well: the certificate names `localhost` too.
    let named = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        ca.display()
    );
    assert!(PostgresStore::connect(&named).await.is_ok());
}
