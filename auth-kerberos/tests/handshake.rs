//! The acceptor in process against MIT's initiator (libgssapi's ClientCtx) with a ticket
//! from a throwaway realm: the session keeps the principal apart from the mapped user,
//! mutual authentication completes, and a foreign realm is refused. The realm's settings
//! are process-wide environment variables, so the test runs itself as a child process
//! with them set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;

use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
use auth_kerberos::{GssAuthenticator, PrincipalMapper};
use auth_tests::kdc::{Kdc, REALM};
use common::Initiator;
use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};

mod common;

const CHILD: &str = "AUTH_KERBEROS_TEST_CHILD";

fn attempt() -> Attempt {
    let target = Name::new(b"postgres@localhost", Some(GSS_NT_HOSTBASED_SERVICE)).unwrap();
    let mut client = ClientCtx::new(
        None,
        target,
        CtxFlags::GSS_C_MUTUAL_FLAG,
        Some(GSS_MECH_KRB5),
    );
    let first = client.step(None, None).unwrap().unwrap().to_vec();
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "127.0.0.1:5000".parse().unwrap()),
        Credential::GssToken(first),
    )
    .with_conversation(Box::new(Initiator(client)))
}

/// The first token of a fresh handshake, changed by `change`.
fn tampered(change: fn(&mut Vec<u8>)) -> Attempt {
    let mut a = attempt();
    if let Credential::GssToken(t) = &mut a.credential {
        change(t);
    }
    a
}

async fn contract(auth: &GssAuthenticator) {
    use auth_core::contract::authenticator::{
        AuthenticatorCapabilities, AuthenticatorFixture, run_all,
    };
    use std::sync::Arc;
    let fixture = AuthenticatorFixture {
        valid: Arc::new(attempt),
        wrong_secret: Arc::new(|| {
            tampered(|t| {
                let i = t.len() - 20;
                t[i] ^= 0x55;
            })
        }),
        unknown_principal: Arc::new(|| tampered(|t| t.truncate(t.len() / 2))),
        foreign: Arc::new(|| {
            Attempt::new(
                ConnectionInfo::tcp(Protocol::Postgres, "127.0.0.1:5000".parse().unwrap()),
                Credential::password("alice", "a password"),
            )
        }),
        principal: format!("alice/admin@{REALM}"),
        secrets: Vec::new(),
    };
    let caps = AuthenticatorCapabilities {
        concurrency: 4,
        credential_names_principal: true,
        ..AuthenticatorCapabilities::default()
    };
    run_all(auth, &fixture, &caps).await;
}

async fn as_child() {
    let keytab = std::env::var("AUTH_KERBEROS_TEST_KEYTAB").unwrap();
    let mapper = PrincipalMapper {
        realms: vec![REALM.to_owned()],
        strip_instance: true,
        ..PrincipalMapper::default()
    };
    let auth = GssAuthenticator::new(Some(keytab.clone().into()), mapper);
    let out = auth.authenticate(&mut attempt()).await;
    let session = out.session().unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(session.principal(), format!("alice/admin@{REALM}"));
    assert_eq!(session.user(), "alice");
    assert_eq!(session.method(), "kerberos");

    // Another realm's tickets are refused by the mapping, after a successful handshake.
    let strict = GssAuthenticator::new(
        Some(keytab.clone().into()),
        PrincipalMapper {
            realms: vec!["OTHER.REALM".into()],
            ..PrincipalMapper::default()
        },
    );
    let out = strict.authenticate(&mut attempt()).await;
    let failure = out.failure().unwrap();
    assert_eq!(
        failure.error,
        auth_core::Error::Credential(auth_core::CredentialError::Invalid)
    );
    assert!(
        failure
            .detail
            .contains("realm `TEST.REALM` is not accepted"),
        "{failure:?}"
    );

    // The keytab holds postgres/localhost; an acceptor configured for another service
    // refuses its tickets, one for `postgres` accepts them.
    let other = GssAuthenticator::new(
        Some(keytab.clone().into()),
        PrincipalMapper {
            strip_instance: true,
            ..PrincipalMapper::default()
        },
    )
    .with_service("HTTP");
    let out = other.authenticate(&mut attempt()).await;
    assert!(
        out.failure()
            .unwrap()
            .detail
            .contains("not the configured one"),
        "{out:?}"
    );
    let same = GssAuthenticator::new(
        Some(keytab.clone().into()),
        PrincipalMapper {
            strip_instance: true,
            ..PrincipalMapper::default()
        },
    )
    .with_service("postgres");
    assert!(same.authenticate(&mut attempt()).await.is_authenticated());

    // A garbage token is a clean rejection, never a panic.
    let mut garbage = Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "127.0.0.1:5000".parse().unwrap()),
        Credential::GssToken(b"not a token".to_vec()),
    );
    let out = auth.authenticate(&mut garbage).await;
    assert!(out.failure().is_some(), "{out:?}");

    // A keytab that does not exist: the server is unavailable, not the client wrong.
    let missing = GssAuthenticator::new(
        Some("/nonexistent/keytab".into()),
        PrincipalMapper::default(),
    );
    let out = missing.authenticate(&mut attempt()).await;
    assert_eq!(out.class(), auth_core::OutcomeClass::Unavailable, "{out:?}");

    // The authenticator contract, with real tickets: a ticket whose encrypted part was
    // tampered with, and a truncated one, both fail.
    contract(&auth).await;
    println!("child: all checks passed");
}

#[tokio::test]
async fn the_acceptor_authenticates_an_mit_initiator() {
    if std::env::var_os(CHILD).is_some() {
        as_child().await;
        return;
    }
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("alice/admin", "alice-admin-password").unwrap();
    kdc.add_service("postgres/localhost", None).unwrap();
    kdc.kinit("alice/admin", "alice-admin-password", None, None)
        .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "the_acceptor_authenticates_an_mit_initiator",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(kdc.env())
        .env(CHILD, "1")
        .env("AUTH_KERBEROS_TEST_KEYTAB", kdc.keytab())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child: all checks passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
