//! CORE-9/CORE-13 from where users are: a system account (the account stage's flag) logs
//! in from this machine, is refused from a test host in a network namespace unless it
//! allows remote login, and then only with a password (a bearer token from the same host
//! is refused). The refusals are generic to the client and audited with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use auth_core::account::Directory;
use auth_examples::api::LocalIssuer;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::netns::TestHost;
use secrecy::SecretString;

const RULES: &str = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";
const PASSWORD: &str = "maintenance long password";

/// `maint`, a system account with a password, on `gw`.
async fn system_account(gw: &GatewayProcess, remote_login: bool) {
    let users = Users::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")));
    let hasher = Hasher::new(Argon2Settings::default()).unwrap();
    let password = SecretString::from(PASSWORD.to_owned());
    users
        .set_password(&hasher, &PasswordPolicy::default(), "maint", &password)
        .await
        .unwrap();
    Directory::new(users.store().clone())
        .modify("maint", |r| {
            r.system = true;
            r.remote_login = remote_login;
        })
        .await
        .unwrap();
}

fn psql(cmd: std::process::Command, gw: &GatewayProcess) -> Result<String, String> {
    gateway::psql(
        cmd,
        &gw.conninfo("maint", "sslmode=disable"),
        PASSWORD,
        "SELECT current_user",
    )
}

#[tokio::test]
async fn a_system_account_logs_in_locally_and_remotely_only_when_allowed_and_with_a_password() {
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));

    // On this machine: a system account logs in with its password.
    let local = GatewayProcess::start(binary, "10s", RULES).unwrap_or_else(|e| panic!("{e}"));
    system_account(&local, false).await;
    assert_eq!(
        psql(std::process::Command::new("psql"), &local).as_deref(),
        Ok("maint")
    );

    // From another machine (a test host): refused, generically, and audited.
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let gw = GatewayProcess::start_at(binary, host.gateway.into(), "10s", RULES, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    system_account(&gw, false).await;
    let err = psql(host.command("psql"), &gw).unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"maint\""),
        "{err}"
    );
    assert_eq!(
        gw.newest_refusal()["detail"],
        "system account `maint` may not log in from another machine"
    );
    // The SQLSTATE is 28000, as PostgreSQL's for a role that may not log in. This client
    // is the test process itself, connecting to the test host's link address, so its
    // source is that address, not loopback.
    let conninfo = format!(
        "{} password='{PASSWORD}' connect_timeout=10",
        gw.conninfo("maint", "sslmode=disable")
    );
    let refused = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{refused:?}"
    );

    // Allowed remotely: with the password, yes; with a bearer token, no.
    system_account(&gw, true).await;
    assert_eq!(psql(host.command("psql"), &gw).as_deref(), Ok("maint"));
    let token = LocalIssuer::load_or_create(&gw.data)
        .unwrap()
        .issue("maint", "read", Duration::from_secs(60))
        .unwrap();
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-H".to_owned(), format!("Authorization: Bearer {token}")]);
    let status = gateway::http_status(host.command("curl"), &args, &url);
    assert_eq!(status, "401");
    assert_eq!(
        gw.newest_refusal()["detail"],
        "system account `maint` logs in from another machine only with a password, not oauth"
    );
}
