//! authctl end to end, and what other processes see: rotation without restart, backup
//! and restore, tamper detection, users, clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use auth_core::{Authenticator, CredentialStore, Key};
use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, ScramAuthenticator, Users};
use auth_tests::scram_client::{Binding, scram_attempt};
use auth_wallet::{FileStore, MasterKey, Wallet};

struct Env {
    _dir: tempfile::TempDir,
    wallet: PathBuf,
    key: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        wallet: dir.path().join("wallet"),
        key: dir.path().join("master.key"),
        _dir: dir,
    };
    let out = authctl(
        &env,
        &["key", "generate", "--out", env.key.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env
}

fn authctl(env: &Env, args: &[&str], stdin: Option<&str>) -> Output {
    authctl_on(
        &["--wallet", env.wallet.to_str().unwrap()],
        env,
        args,
        stdin,
    )
}

/// Runs authctl on the backend `store` names (`--wallet PATH`, `--postgres URL ...`) with
/// `env`'s key, feeding `stdin`.
fn authctl_on(store: &[&str], env: &Env, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authctl"))
        .env_clear()
        .args(store)
        .args(["--key-file", env.key.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        // A command that fails before reading its input closes the pipe early.
        let _ = pipe.write_all(input.as_bytes());
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn err(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn wallet_of(env: &Env) -> Wallet {
    Wallet::over_file(
        FileStore::new(&env.wallet),
        MasterKey::from_file(&env.key).unwrap(),
    )
}

#[tokio::test]
async fn secrets_are_set_shown_only_on_request_and_rotation_is_seen_without_restart() {
    let env = env();
    ok(&authctl(
        &env,
        &["secret", "set", "pgwire-oauth-client"],
        Some("first-client-secret-0123456789abcdef\n"),
    ));
    let shown = ok(&authctl(
        &env,
        &["secret", "get", "pgwire-oauth-client"],
        None,
    ));
    assert!(
        shown.contains("version: 1") && !shown.contains("first-client-secret"),
        "{shown}"
    );
    let revealed = ok(&authctl(
        &env,
        &["secret", "get", "pgwire-oauth-client", "--reveal"],
        None,
    ));
    assert!(revealed.contains("value: first-client-secret-0123456789abcdef"));

    // This process keeps its wallet open; another process rotates the secret.
    let wallet = wallet_of(&env);
    let key = Key::new("pgwire-oauth-client").unwrap();
    assert_eq!(
        wallet.get(&key).await.unwrap().unwrap().value_str(),
        Some("first-client-secret-0123456789abcdef")
    );
    ok(&authctl(
        &env,
        &["secret", "rotate", "pgwire-oauth-client"],
        Some("second-client-secret-0123456789abcdef"),
    ));
    assert_eq!(
        wallet.get(&key).await.unwrap().unwrap().value_str(),
        Some("second-client-secret-0123456789abcdef"),
        "the next read sees the rotation"
    );
    let listed = ok(&authctl(&env, &["secret", "list"], None));
    assert!(
        listed.starts_with("pgwire-oauth-client\tversion 2"),
        "{listed}"
    );
    assert!(!listed.contains("second-client-secret"));
    // The file never holds the plaintext.
    let raw = std::fs::read(&env.wallet).unwrap();
    assert!(!raw.windows(20).any(|w| w == b"second-client-secret"));
}

#[tokio::test]
async fn backup_wipe_restore_round_trip_and_a_foreign_bundle_is_refused() {
    let env = env();
    for (k, v) in [
        ("pgwire-user-alice", "alice-secret"),
        ("pgwire-user-bob", "bob-secret"),
        ("pgwire-oauth-client", "client-secret"),
    ] {
        ok(&authctl(&env, &["secret", "set", k], Some(v)));
    }
    let bundle = env.wallet.with_file_name("backup.bundle");
    ok(&authctl(&env, &["export", bundle.to_str().unwrap()], None));
    assert!(
        !std::fs::read(&bundle)
            .unwrap()
            .windows(12)
            .any(|w| w == b"alice-secret")
    );
    // The file alone removed is noticed (its marker says the wallet wrote it)...
    std::fs::remove_file(&env.wallet).unwrap();
    assert!(
        err(&authctl(&env, &["secret", "list"], None)).contains("is missing"),
        "a removed wallet file is not an empty wallet"
    );
    // ...and a wiped disk (file and marker gone) starts empty, for the restore.
    std::fs::remove_file(env.wallet.with_file_name("wallet.v2")).unwrap();
    assert!(
        ok(&authctl(&env, &["secret", "list"], None)).is_empty(),
        "wiped"
    );
    assert!(
        ok(&authctl(&env, &["import", bundle.to_str().unwrap()], None))
            // the three secrets and the accounts `secret set` made for alice and bob
            .contains("imported 5 secrets")
    );
    let wallet = wallet_of(&env);
    let bob = wallet
        .get(&Key::new("pgwire-user-bob").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.value_str(), Some("bob-secret"));

    // Another installation's key cannot read or inject this bundle.
    let other = self::env();
    let message = err(&authctl(
        &other,
        &["import", bundle.to_str().unwrap()],
        None,
    ));
    assert!(message.contains("does not authenticate"), "{message}");
    assert!(
        ok(&authctl(&other, &["secret", "list"], None)).is_empty(),
        "nothing was written"
    );
    // Nor does a bundle with one byte changed.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    assert!(
        err(&authctl(&env, &["import", bundle.to_str().unwrap()], None))
            .contains("does not authenticate")
    );
}

#[tokio::test]
async fn one_flipped_byte_in_the_file_is_a_clear_error_never_garbage() {
    let env = env();
    ok(&authctl(
        &env,
        &["secret", "set", "pgwire-user-carol"],
        Some("carol-secret"),
    ));
    let original = std::fs::read(&env.wallet).unwrap();
    for at in [original.len() / 2, original.len() - 5, 80] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x04;
        std::fs::write(&env.wallet, &bytes).unwrap();
        let message = err(&authctl(
            &env,
            &["secret", "get", "pgwire-user-carol", "--reveal"],
            None,
        ));
        // Wherever the byte is, the refusal says what: a header or MAC that does not
        // verify, the record it lands in, named, or (when the flip lands on a base64
        // character and makes it a backslash or quote) a file that no longer parses.
        assert!(
            message.contains("header")
                || message.contains("not valid JSON")
                || message.contains("does not authenticate")
                || message.contains("failed")
                || message.contains("record `"),
            "{message}"
        );
        assert!(message.contains("restore it from a backup"), "{message}");
    }
    // A sealed value moved to another key name (checksum recomputed by an attacker with
    // file access) fails authentication instead of decrypting.
    std::fs::write(&env.wallet, &original).unwrap();
    let store = FileStore::new(&env.wallet)
        .with_mac_key(MasterKey::from_file(&env.key).unwrap().file_mac_key());
    let sealed = store
        .get(&Key::new("pgwire-user-carol").unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .put(
            &Key::new("pgwire-user-mallory").unwrap(),
            auth_core::secrecy::ExposeSecret::expose_secret(&sealed.value)
                .to_vec()
                .into(),
            auth_core::Precondition::None,
        )
        .await
        .unwrap();
    let message = err(&authctl(
        &env,
        &["secret", "get", "pgwire-user-mallory", "--reveal"],
        None,
    ));
    assert!(message.contains("authentication failed"), "{message}");
}

#[tokio::test]
async fn rekey_re_encrypts_everything_and_the_old_key_stops_working() {
    let env = env();
    for i in 0..20 {
        ok(&authctl(
            &env,
            &["secret", "set", &format!("svc-{i}")],
            Some(&format!("value-{i}")),
        ));
    }
    let new_key = env.key.with_file_name("new.key");
    ok(&authctl(
        &env,
        &["key", "generate", "--out", new_key.to_str().unwrap()],
        None,
    ));
    let said = ok(&authctl(
        &env,
        &["rekey", "--new-key-file", new_key.to_str().unwrap()],
        None,
    ));
    assert!(said.contains("re-encrypted 20 secrets"), "{said}");
    let old_fails = err(&authctl(
        &env,
        &["secret", "get", "svc-7", "--reveal"],
        None,
    ));
    assert!(old_fails.contains("not loaded"), "{old_fails}");
    let new_env = Env {
        _dir: tempfile::tempdir().unwrap(),
        wallet: env.wallet.clone(),
        key: new_key,
    };
    assert!(
        ok(&authctl(
            &new_env,
            &["secret", "get", "svc-7", "--reveal"],
            None
        ))
        .contains("value: value-7")
    );
}

#[tokio::test]
async fn users_added_with_authctl_log_in_by_password_and_scram() {
    let env = env();
    ok(&authctl(
        &env,
        &["user", "add", "dana", "--role", "dba"],
        Some("dana's long password"),
    ));
    let refused = err(&authctl(&env, &["user", "add", "erin"], Some("password1")));
    assert!(refused.contains("10,000 most common"), "{refused}");
    let users = Users::new(Arc::new(wallet_of(&env)));
    let settings = Argon2Settings::default();
    let password = PasswordAuthenticator::new(users.clone(), Hasher::new(settings).unwrap());
    let mut attempt = auth_core::Attempt::new(
        auth_core::ConnectionInfo::tcp(
            auth_core::Protocol::Postgres,
            "10.0.0.1:1".parse().unwrap(),
        ),
        auth_core::Credential::password("dana", "dana's long password"),
    );
    let out = password.authenticate(&mut attempt).await;
    assert_eq!(out.session().unwrap().roles(), [auth_core::Role::Dba]);
    let (mut attempt, _) = scram_attempt("dana", "dana's long password", Binding::None, None);
    assert!(
        ScramAuthenticator::new(users, [0x5A; 32])
            .authenticate(&mut attempt)
            .await
            .is_authenticated()
    );
    ok(&authctl(&env, &["user", "del", "dana"], None));
    assert!(
        err(&authctl(
            &env,
            &["user", "passwd", "dana"],
            Some("whatever password")
        ))
        .contains("no user dana")
    );
}

#[test]
fn errors_say_what_to_do() {
    let env = env();
    let no_key = Command::new(env!("CARGO_BIN_EXE_authctl"))
        .env_clear()
        .args(["--wallet", env.wallet.to_str().unwrap(), "secret", "list"])
        .output()
        .unwrap();
    assert!(err(&no_key).contains("pass --key-file PATH or --key-env VAR"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&env.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = err(&authctl(&env, &["secret", "list"], None));
    assert!(loose.contains("chmod 600"), "{loose}");
    std::fs::set_permissions(&env.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(err(&authctl(&env, &["secret", "get", "nope"], None)).contains("no secret nope"));
    assert!(
        err(&authctl(&env, &["secret", "rotate", "nope"], Some("x"))).contains("use `secret set`")
    );
    assert!(
        err(&authctl(&env, &["secret", "set", "bad key"], Some("x"))).contains("invalid store key")
    );
    assert!(
        err(&authctl(&env, &["secret", "set", "k"], Some("")))
            .contains("no secret on standard input")
    );
    let help = Command::new(env!("CARGO_BIN_EXE_authctl"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for word in [
        "secret",
        "user",
        "export",
        "import",
        "rekey",
        "--wallet",
        "--postgres",
        "--key-file",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

#[test]
fn authctl_works_on_the_postgres_backend() {
    let pg = auth_tests::postgres::Postgres::start().unwrap_or_else(|e| panic!("{e}"));
    let env = env();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let run =
        |args: &[&str], stdin: Option<&str>| authctl_on(&["--postgres", &url], &env, args, stdin);
    ok(&run(
        &["secret", "set", "pgwire-user-pat"],
        Some("pat's wallet secret"),
    ));
    ok(&run(
        &["user", "add", "quinn"],
        Some("quinn's long password"),
    ));
    assert!(
        ok(&run(
            &["secret", "get", "pgwire-user-pat", "--reveal"],
            None
        ))
        .contains("value: pat's wallet secret")
    );
    let listed = ok(&run(&["secret", "list"], None));
    assert!(
        listed.contains("pgwire-user-pat") && listed.contains("user/quinn"),
        "{listed}"
    );
    let raw = pg.psql("SELECT count(*) FROM auth_wallet_records WHERE position('wallet secret' in encode(value, 'escape')) > 0").unwrap();
    assert_eq!(raw, "0", "stored sealed");
}

/// A login through an engine with the account stage over the wallet `env` names (another
/// process's view of what authctl writes): the session, or the outcome.
async fn login(env: &Env, credential: auth_core::Credential) -> auth_core::Outcome {
    login_with(Arc::new(wallet_of(env)), credential).await
}

/// A login against `wallet`, which a test may keep across logins as a running server
/// keeps its store (and its in-memory view of the wallet file).
async fn login_with(
    wallet: Arc<dyn CredentialStore>,
    credential: auth_core::Credential,
) -> auth_core::Outcome {
    use auth_core::account::{AccountStage, Directory};
    use auth_core::{
        ApiKeyAuthenticator, Attempt, Chain, ConnectionInfo, Engine, Outcome, Policy, Protocol,
    };
    let users = Users::new(wallet.clone());
    let chain = Chain::builder()
        .link(Arc::new(ApiKeyAuthenticator::new(wallet.clone())))
        .link(Arc::new(PasswordAuthenticator::new(
            users,
            Hasher::new(Argon2Settings::default()).unwrap(),
        )))
        .build();
    let engine = Engine::builder(Policy::single(chain).unwrap())
        .accounts(Arc::new(AccountStage::new(Arc::new(Directory::new(
            wallet,
        )))))
        .build();
    let peer = "192.0.2.10:5000".parse().unwrap();
    // Over TLS, as a password or an API key must be.
    let connection =
        ConnectionInfo::tcp(Protocol::Http, peer).with_tls(auth_core::TlsInfo::default());
    let mut attempt = Attempt::new(connection, credential);
    match engine.offer(&attempt.connection, attempt.credential.user()) {
        Ok(offer) => engine.decide(&offer, &mut attempt).await,
        Err(failure) => Outcome::Rejected(failure),
    }
}

#[tokio::test]
async fn account_commands_take_effect_at_the_next_login_and_are_audited() {
    use auth_core::{Credential, Outcome, Role};
    let env = env();
    let audit = env.wallet.with_file_name("audit.jsonl");
    std::fs::write(&audit, "").unwrap();
    let alice = || Credential::password("alice", "alice long password");
    ok(&authctl(
        &env,
        &["user", "add", "alice"],
        Some("alice long password"),
    ));
    assert!(login(&env, alice()).await.is_authenticated());

    ok(&authctl(&env, &["user", "disable", "alice"], None));
    assert!(matches!(
        login(&env, alice()).await,
        Outcome::AccountRefused { .. }
    ));
    ok(&authctl(&env, &["user", "enable", "alice"], None));
    assert!(login(&env, alice()).await.is_authenticated());

    ok(&authctl(
        &env,
        &["user", "expire", "alice", "--at", "2001-02-03T04:05:06Z"],
        None,
    ));
    let expired = login(&env, alice()).await;
    assert_eq!(
        expired.failure().map(|f| f.detail.into_owned()).as_deref(),
        Some("account `alice` expired at 2001-02-03T04:05:06Z")
    );
    assert!(
        err(&authctl(
            &env,
            &["user", "expire", "alice", "--at", "soon"],
            None
        ))
        .contains("is not a time like 2027-01-31T00:00:00Z")
    );
    ok(&authctl(
        &env,
        &["user", "expire", "alice", "--at", "2999-01-01T00:00:00Z"],
        None,
    ));
    assert!(login(&env, alice()).await.is_authenticated());

    ok(&authctl(
        &env,
        &["user", "role", "add", "alice", "dba"],
        None,
    ));
    let session = login(&env, alice()).await.into_session().unwrap();
    assert_eq!(session.roles(), [Role::Dba]);
    ok(&authctl(
        &env,
        &["user", "role", "remove", "alice", "dba"],
        None,
    ));
    assert!(
        login(&env, alice())
            .await
            .into_session()
            .unwrap()
            .roles()
            .is_empty()
    );
    assert!(
        err(&authctl(
            &env,
            &["user", "role", "add", "alice", "root"],
            None
        ))
        .contains("unknown role `root`")
    );
    assert!(err(&authctl(&env, &["user", "disable", "nobody"], None)).contains("no user `nobody`"));
    let shown = ok(&authctl(&env, &["user", "show", "alice"], None));
    assert!(
        shown.contains("status: Active") && shown.contains("valid until: 2999-01-01T00:00:00Z"),
        "{shown}"
    );
    assert!(!shown.contains("argon2"), "{shown}");
    assert!(shown.contains("system account: no"), "{shown}");

    // System accounts: alice from another machine (this test's client is 192.0.2.10).
    ok(&authctl(&env, &["user", "system", "alice"], None));
    assert_eq!(
        login(&env, alice())
            .await
            .failure()
            .map(|f| f.detail.into_owned())
            .as_deref(),
        Some("system account `alice` may not log in from another machine")
    );
    ok(&authctl(
        &env,
        &["user", "system", "alice", "--remote-login"],
        None,
    ));
    assert!(
        login(&env, alice()).await.is_authenticated(),
        "with a password"
    );
    let shown = ok(&authctl(&env, &["user", "show", "alice"], None));
    assert!(
        shown.contains("system account: yes, from other machines only with a password"),
        "{shown}"
    );
    ok(&authctl(&env, &["user", "system", "alice", "--off"], None));
    assert!(ok(&authctl(&env, &["user", "show", "alice"], None)).contains("system account: no"));
    // A system account for peer or trust rules has no password.
    ok(&authctl(&env, &["user", "system", "maint"], None));
    let shown = ok(&authctl(&env, &["user", "show", "maint"], None));
    assert!(
        shown.contains("password: none") && shown.contains("from this machine only"),
        "{shown}"
    );

    // API keys act as their user, with its account's state.
    let created = ok(&authctl(
        &env,
        &["apikey", "create", "--user", "alice", "--scope", "read"],
        None,
    ));
    let key = created.lines().next().unwrap().to_owned();
    let id = key.split('.').next().unwrap().to_owned();
    let session = login(&env, Credential::ApiKey(key.clone().into()))
        .await
        .into_session()
        .unwrap();
    assert_eq!(
        (session.user(), session.scopes()),
        ("alice", &["read".to_owned()][..])
    );
    let listed = ok(&authctl(&env, &["apikey", "list"], None));
    assert!(
        listed.contains(&id) && listed.contains("user alice") && !listed.contains(&key),
        "{listed}"
    );
    ok(&authctl(&env, &["user", "disable", "alice"], None));
    assert!(
        !login(&env, Credential::ApiKey(key.clone().into()))
            .await
            .is_authenticated()
    );
    ok(&authctl(&env, &["user", "enable", "alice"], None));
    ok(&authctl(&env, &["apikey", "revoke", &id], None));
    assert!(
        !login(&env, Credential::ApiKey(key.clone().into()))
            .await
            .is_authenticated()
    );
    assert!(err(&authctl(&env, &["apikey", "revoke", &id], None)).contains("no API key"));
    assert!(
        err(&authctl(
            &env,
            &["apikey", "create", "--user", "nobody"],
            None
        ))
        .contains("no user nobody")
    );

    // Identities mapped to users.
    ok(&authctl(
        &env,
        &[
            "identity",
            "map",
            "kerberos",
            "alice/admin@EXAMPLE.COM",
            "alice",
        ],
        None,
    ));
    let directory = auth_core::account::Directory::new(Arc::new(wallet_of(&env)));
    assert_eq!(
        directory
            .mapped_user("kerberos", "alice/admin@EXAMPLE.COM")
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    assert!(
        err(&authctl(
            &env,
            &["identity", "map", "kerberos", "x@EXAMPLE.COM", "nobody"],
            None
        ))
        .contains("no user `nobody`")
    );
    ok(&authctl(
        &env,
        &["identity", "unmap", "kerberos", "alice/admin@EXAMPLE.COM"],
        None,
    ));
    assert_eq!(
        directory
            .mapped_user("kerberos", "alice/admin@EXAMPLE.COM")
            .await
            .unwrap(),
        None
    );

    // Every change is in the audit log, by user, with what changed; no secret.
    let text = std::fs::read_to_string(&audit).unwrap();
    let changes: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let details: Vec<&str> = changes
        .iter()
        .filter(|e| e["event"] == "account_changed")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    for expected in [
        "user created",
        "account disabled",
        "account enabled",
        "account expires at 2001-02-03T04:05:06Z",
        "role dba granted",
        "role dba removed",
        "API key",
        "kerberos identity alice/admin@EXAMPLE.COM mapped",
        "now a system account, logging in only from this machine",
        "now a system account, logging in from other machines only with a password",
        "now an ordinary account",
    ] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "{expected} not in {details:?}"
        );
    }
    assert!(
        !text.contains("alice long password") && !text.contains(key.split('.').nth(1).unwrap())
    );
    // The wallet's own writes go to the same log, and the log is its owner's only.
    let secret_writes = changes
        .iter()
        .filter(|e| e["event"] == "secret_access")
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("write user/alice"))
        })
        .count();
    assert!(secret_writes > 0, "{text}");
    use std::os::unix::fs::PermissionsExt;
    let fresh = env.wallet.with_file_name("fresh-audit.jsonl");
    ok(&authctl(
        &env,
        &[
            "--audit-log",
            fresh.to_str().unwrap(),
            "user",
            "disable",
            "alice",
        ],
        None,
    ));
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "authctl creates the log 0600");
}

#[test]
fn authctl_reaches_postgres_over_tls_with_the_ca_it_is_given() {
    let pg =
        auth_tests::postgres::Postgres::start_with_tls("trust").unwrap_or_else(|e| panic!("{e}"));
    let ca = pg.ca_file().unwrap();
    let env = env();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let run = |ca: &std::path::Path, args: &[&str], stdin: Option<&str>| {
        let store = ["--postgres", &url, "--postgres-ca", ca.to_str().unwrap()];
        authctl_on(&store, &env, args, stdin)
    };
    ok(&run(
        &ca,
        &["secret", "set", "tls-secret"],
        Some("kept over TLS"),
    ));
    assert!(
        ok(&run(
            &ca,
            &["secret", "get", "tls-secret", "--reveal"],
            None
        ))
        .contains("value: kept over TLS")
    );
    let dir = tempfile::tempdir().unwrap();
    let other = auth_tests::pki::TestCa::new("another CA", dir.path()).unwrap();
    let wrong = other.write_ca("other.crt").unwrap();
    let refused = err(&run(&wrong, &["secret", "list"], None));
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[tokio::test]
async fn a_password_changed_by_authctl_is_seen_by_a_running_process_at_its_next_login() {
    use auth_core::Credential;
    let env = env();
    ok(&authctl(
        &env,
        &["user", "add", "alice"],
        Some("alice first long password"),
    ));
    // One store for every login, as a running gateway keeps it.
    let running: Arc<dyn CredentialStore> = Arc::new(wallet_of(&env));
    let first = || Credential::password("alice", "alice first long password");
    let second = || Credential::password("alice", "alice second long password");
    assert!(
        login_with(running.clone(), first())
            .await
            .is_authenticated()
    );
    assert!(
        !login_with(running.clone(), second())
            .await
            .is_authenticated()
    );
    ok(&authctl(
        &env,
        &["user", "passwd", "alice"],
        Some("alice second long password"),
    ));
    assert!(
        login_with(running.clone(), second())
            .await
            .is_authenticated(),
        "the change made by another process is seen at the next login"
    );
    assert!(
        !login_with(running.clone(), first())
            .await
            .is_authenticated()
    );
    ok(&authctl(&env, &["user", "disable", "alice"], None));
    assert!(
        !login_with(running, second()).await.is_authenticated(),
        "and so is a disabled account"
    );
}
