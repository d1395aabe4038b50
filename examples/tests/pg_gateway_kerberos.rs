//! Kerberos over pgwire with real clients holding tickets from a throwaway MIT realm:
//! psql and psycopg log in; no ticket, an expired ticket and an unmapped principal fail
//! with the right SQLSTATE and audit entry; a stopped KDC fails fast; a rotated service
//! key is used without restarting the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use auth_core::Precondition;
use auth_password::{UserRecord, Users};
use auth_tests::gateway::GatewayProcess;
use auth_tests::kdc::{Kdc, REALM};

struct Setup {
    kdc: Kdc,
    gw: GatewayProcess,
}

async fn setup() -> Setup {
    setup_with(&format!("realms = [\"{REALM}\"]\n")).await
}

/// The realm with alice, bob, carol and `alice/admin`; the gateway's `[kerberos]` section
/// ends with `kerberos` (realms, maps) and the file with `extra`.
async fn setup_with(kerberos: &str) -> Setup {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    for user in ["alice", "bob", "carol", "alice/admin"] {
        kdc.add_user(
            user,
            &format!("{}-kerberos-password", user.replace('/', "-")),
        )
        .unwrap();
    }
    kdc.add_service("postgres/localhost", None).unwrap();
    let rules = format!(
        "[[rule]]\nname = \"kerberos\"\nusers = [\"alice\", \"bob\", \"carol\", \"alice_admin\"]\nmethod = \"gss\"\n\
         [[rule]]\nname = \"scram\"\nmethod = \"scram\"\n\
         [kerberos]\nkeytab = \"{}\"\n{kerberos}",
        kdc.keytab().display()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start_with_env(binary, "10s", &rules, &kdc.env())
        .unwrap_or_else(|e| panic!("{e}"));
    // alice and carol are users of the gateway; bob has a principal but no user.
    let users = Users::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")));
    for user in ["alice", "carol", "alice_admin"] {
        users
            .put(user, &UserRecord::default(), Precondition::Absent)
            .await
            .unwrap();
    }
    Setup { kdc, gw }
}

/// psql as `user` with the credential cache `ccache`; (succeeded, stdout, stderr).
fn psql(s: &Setup, user: &str, ccache: &Path) -> (bool, String, String) {
    let conninfo = format!(
        "host=localhost port={} user={user} dbname={user} gssencmode=disable sslmode=disable connect_timeout=10",
        s.gw.port
    );
    let out = s
        .kdc
        .command("psql")
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .args([
            "-X",
            "-w",
            "-At",
            "-d",
            &conninfo,
            "-c",
            "SELECT current_user, session_user",
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn ccache(s: &Setup, name: &str) -> PathBuf {
    s.kdc.dir().join(name)
}

/// A fresh ticket for alice in the cache file `name`.
fn alice_ticket(s: &Setup, name: &str) -> PathBuf {
    let cache = ccache(s, name);
    s.kdc
        .kinit("alice", "alice-kerberos-password", Some(&cache), None)
        .unwrap();
    cache
}

#[tokio::test]
async fn psql_logs_in_with_a_ticket_and_the_identity_is_kept_apart_from_the_user() {
    let s = setup().await;
    let cache = alice_ticket(&s, "alice.cc");
    let (ok, out, err) = psql(&s, "alice", &cache);
    assert!(ok, "{err}");
    assert_eq!(out, "alice|alice");
    let success = s.gw.audit("attempt_succeeded").into_iter().next().unwrap();
    assert_eq!(success["method"], "kerberos");
    // psql connected as `alice`; the session's principal is the full identity.
    let step = s.gw.audit("step").into_iter().next().unwrap();
    assert_eq!(step["outcome"], "success");

    // alice's ticket on a connection for `bob` proves alice, not bob: 28000.
    let (ok, out, err) = psql(&s, "bob", &cache);
    assert!(
        !ok && err.contains("GSSAPI authentication failed for user \"bob\""),
        "ok={ok} out={out} err={err}"
    );
    let detail = s.gw.newest_refusal_detail();
    assert!(
        detail.contains(
            "identity `alice@TEST.REALM` (kerberos) may not act as the requested user `bob`"
        ),
        "{detail}"
    );
}

#[tokio::test]
async fn no_ticket_expired_ticket_and_unmapped_principal_fail_cleanly() {
    let s = setup().await;
    // No ticket at all: the client cannot even start.
    let (ok, _, err) = psql(&s, "alice", &ccache(&s, "empty.cc"));
    assert!(!ok && err.contains("GSSAPI"), "{err}");

    // A principal with a ticket but no user on the gateway: 28000 and an audit entry.
    let bob = ccache(&s, "bob.cc");
    s.kdc
        .kinit("bob", "bob-kerberos-password", Some(&bob), None)
        .unwrap();
    let (ok, _, err) = psql(&s, "bob", &bob);
    assert!(
        !ok && err.contains("GSSAPI authentication failed for user \"bob\""),
        "{err}"
    );
    let failed = s.gw.audit("attempt_failed").into_iter().next().unwrap();
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("not a known user"),
        "{failed}"
    );

    // A ticket that has expired.
    let short = ccache(&s, "short.cc");
    s.kdc
        .kinit("carol", "carol-kerberos-password", Some(&short), Some("2s"))
        .unwrap();
    // Wait until the KDC itself refuses the ticket as expired (past its clock-skew
    // allowance), asking with a throwaway copy of the cache each time.
    let kdc_says_expired = || {
        let probe = ccache(&s, "probe.cc");
        std::fs::copy(&short, &probe).unwrap();
        let out = s
            .kdc
            .command("kvno")
            .arg("postgres/localhost")
            .env("KRB5CCNAME", format!("FILE:{}", probe.display()))
            .output()
            .unwrap();
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("expired")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !kdc_says_expired() {
        assert!(
            std::time::Instant::now() < deadline,
            "the 2s ticket never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, out, err) = psql(&s, "carol", &short);
    assert!(
        !ok && err.contains("GSSAPI"),
        "ok={ok} out={out} err={err} audit={:?}",
        s.gw.audit_events().last()
    );
}

#[tokio::test]
async fn a_stopped_kdc_fails_fast_and_a_rotated_key_needs_no_restart() {
    let mut s = setup().await;
    let cache = alice_ticket(&s, "alice.cc");
    s.kdc.stop();
    // Only a TGT in the cache: psql must reach the KDC for a service ticket, and cannot.
    let started = std::time::Instant::now();
    let (ok, _, err) = psql(&s, "alice", &cache);
    assert!(!ok, "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "failed within the timeout"
    );
    s.kdc.restart().unwrap();

    // Rotate the service key and drop the old one from the keytab: old tickets stop
    // working, new ones work, and the gateway was never restarted.
    let (ok, _, err) = psql(&s, "alice", &cache);
    assert!(ok, "{err}");
    s.kdc.add_service("postgres/localhost", None).unwrap();
    let out = s
        .kdc
        .command("kadmin.local")
        .args([
            "-r",
            REALM,
            "-q",
            &format!(
                "ktremove -k {} postgres/localhost old",
                s.kdc.keytab().display()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ok, _, _) = psql(&s, "alice", &cache);
    assert!(!ok, "a ticket for the removed key is refused");
    let fresh = alice_ticket(&s, "alice-new.cc");
    let (ok, out, err) = psql(&s, "alice", &fresh);
    assert!(ok && out == "alice|alice", "{err}");
}

const PSYCOPG: &str = r#"
import sys, psycopg
try:
    with psycopg.connect(sys.argv[1]) as conn:
        print("OK", conn.execute("SELECT current_user").fetchone()[0])
except psycopg.OperationalError as e:
    print("ERR", str(e).strip().splitlines()[-1])
"#;

#[tokio::test]
async fn psycopg_logs_in_with_a_ticket() {
    let s = setup().await;
    let cache = alice_ticket(&s, "alice.cc");
    let python = auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"));
    let conninfo = format!(
        "host=localhost port={} user=alice dbname=alice gssencmode=disable sslmode=disable",
        s.gw.port
    );
    let out = s
        .kdc
        .command(python.to_str().unwrap())
        .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
        .args(["-c", PSYCOPG, &conninfo])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(text, "OK alice", "{}", String::from_utf8_lossy(&out.stderr));
    let _ = Command::new("true").status();
}

#[tokio::test]
async fn the_jdbc_driver_logs_in_with_gssapi() {
    let probe = auth_tests::jdbc::JdbcProbe::compile().unwrap_or_else(|e| panic!("{e}"));
    let s = setup().await;
    let cache = alice_ticket(&s, "alice.cc");
    let url = format!(
        "jdbc:postgresql://localhost:{}/alice?gsslib=gssapi&jaasLogin=false&sslmode=disable",
        s.gw.port
    );
    let out = s
        .kdc
        .command("java")
        .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
        .arg(format!(
            "-Djava.security.krb5.conf={}",
            s.kdc.dir().join("krb5.conf").display()
        ))
        .arg("-Djavax.security.auth.useSubjectCredsOnly=false")
        .arg("-cp")
        .arg(probe.classpath())
        .args(["Probe", &url, "alice", ""])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(text, "OK alice", "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn admin_instances_map_per_the_rules_and_identity_maps_let_a_principal_act_as_another_user() {
    // `alice/admin` becomes `alice_admin`; plain principals keep their name; alice may
    // also act as carol (pg_ident), nobody else may.
    let s = setup_with(&format!(
        "include_realm = true\n[[kerberos.map]]\npattern = '^([^/@]+)/admin@TEST\\.REALM$'\nuser = '\\1_admin'\n\
         [[kerberos.map]]\npattern = '^([^/@]+)@TEST\\.REALM$'\nuser = '\\1'\n\
         [[identity_map]]\nmethod = \"kerberos\"\nidentity = \"alice@{REALM}\"\nuser = \"carol\"\n"
    ))
    .await;
    let admin = ccache(&s, "alice-admin.cc");
    s.kdc
        .kinit(
            "alice/admin",
            "alice-admin-kerberos-password",
            Some(&admin),
            None,
        )
        .unwrap();
    let (ok, out, err) = psql(&s, "alice_admin", &admin);
    assert!(ok, "{err}");
    assert_eq!(out, "alice_admin|alice_admin");
    let (ok, _, err) = psql(&s, "alice", &admin);
    assert!(
        !ok && err.contains("GSSAPI authentication failed for user \"alice\""),
        "{err}"
    );

    let alice = alice_ticket(&s, "alice.cc");
    let (ok, out, err) = psql(&s, "carol", &alice);
    assert!(ok, "{err}");
    assert_eq!(out, "carol|carol");
    let (ok, _, err) = psql(&s, "bob", &alice);
    assert!(!ok, "{err}");
    let detail = s.gw.newest_refusal_detail();
    assert!(
        detail.contains(
            "identity `alice@TEST.REALM` (kerberos) may not act as the requested user `bob`"
        ),
        "{detail}"
    );
}

#[tokio::test]
async fn a_realm_outside_the_configured_list_is_refused_with_28000_and_audited() {
    // The gateway trusts only OTHER.REALM: TEST.REALM's alice is from a foreign realm.
    let s = setup_with("realms = [\"OTHER.REALM\"]\n").await;
    let cache = alice_ticket(&s, "alice.cc");
    let (ok, _, err) = psql(&s, "alice", &cache);
    assert!(
        !ok && err.contains("GSSAPI authentication failed for user \"alice\""),
        "{err}"
    );
    let refused = s.gw.newest_refusal();
    assert_eq!(refused["error"], "invalid_credentials", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("realm `TEST.REALM` is not accepted"),
        "{refused}"
    );
}

#[tokio::test]
async fn with_no_realm_list_the_services_own_realm_is_accepted() {
    let s = setup_with("").await;
    let cache = alice_ticket(&s, "alice.cc");
    let (ok, out, err) = psql(&s, "alice", &cache);
    assert!(ok, "{err}");
    assert_eq!(out, "alice|alice");
}
