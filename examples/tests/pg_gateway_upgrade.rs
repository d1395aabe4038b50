//! A data directory made by the previous version (`tests/fixtures/gateway-data-v1`,
//! before the one user directory layout) keeps working: the gateway migrates it at start
//! (accounts for users that had only a wallet secret), once, and every user logs in as
//! before, over pgwire and HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use auth_core::Role;
use auth_core::account::{Directory, LAYOUT_VERSION};
use auth_examples::api::LocalIssuer;
use auth_tests::gateway::{self, GatewayProcess};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gateway-data-v1"
);
const DEMO: &str = "bBCcijRksBfWj9EhSHA5";
const WALT: &str = "walt-wallet-secret-2026";
const HANA: &str = "hana-Passw0rd-2026!x";

fn psql(gw: &GatewayProcess, user: &str, password: &str, extra: &str) -> Result<String, String> {
    gateway::psql(
        std::process::Command::new("psql"),
        &gw.conninfo(user, extra),
        password,
        "SELECT current_user",
    )
}

#[tokio::test]
async fn a_data_directory_of_the_previous_layout_keeps_working() {
    // The fixture's policy is SCRAM only; walt, who has only a wallet secret, logs in
    // with a cleartext password over TLS, so a rule for him goes first.
    let walt_first = |config: String| {
        config.replacen(
            "[[rule]]",
            "[[rule]]\nname = \"walt\"\ntype = \"hostssl\"\nusers = [\"walt\"]\nmethod = \"password\"\n\n[[rule]]",
            1,
        )
    };
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start_on_copy(binary, Path::new(FIXTURE), walt_first, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let banner = gw.process.output();
    assert!(
        banner.contains("user directory migrated: accounts created for wallet users walt"),
        "{banner}"
    );
    assert!(
        !banner.contains("created user demo"),
        "the demo user is the old one: {banner}"
    );

    assert_eq!(
        psql(&gw, "demo", DEMO, "sslmode=disable").as_deref(),
        Ok("demo")
    );
    assert_eq!(
        psql(&gw, "hana", HANA, "sslmode=disable").as_deref(),
        Ok("hana")
    );
    let tls = format!(
        "sslmode=verify-full sslrootcert={}",
        gw.data.join("server.crt").display()
    );
    assert_eq!(psql(&gw, "walt", WALT, &tls).as_deref(), Ok("walt"));
    assert!(psql(&gw, "walt", "not-his-secret", &tls).is_err());

    // The old issuer key signs tokens the HTTP front door accepts.
    let token = LocalIssuer::load_or_create(&gw.data)
        .unwrap()
        .issue("hana", "read", std::time::Duration::from_secs(60))
        .unwrap();
    // The old data directory's certificate serves HTTPS now too.
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-H".to_owned(), format!("Authorization: Bearer {token}")]);
    let status = gateway::http_status(std::process::Command::new("curl"), &args, &url);
    assert_eq!(status, "200");

    // Roles written as strings by the old code read as roles; the layout is current.
    let directory = Directory::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")));
    let (hana, _) = directory.get("hana").await.unwrap().unwrap();
    assert_eq!(hana.roles, vec![Role::Dba]);
    let again = directory
        .migrate(auth_wallet::DEFAULT_USER_PREFIX)
        .await
        .unwrap();
    assert_eq!(again.from, LAYOUT_VERSION);
    assert!(
        again.accounts_created.is_empty(),
        "migrates once: {again:?}"
    );
}
