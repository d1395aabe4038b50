//! SCRAM verifiers move both ways between a real PostgreSQL and auth-password:
//! `pg_authid.rolpassword` imported into our store authenticates an independent SCRAM
//! client through our server, and a verifier we generate is accepted by PostgreSQL itself
//! when psql logs in with the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use auth_core::{Authenticator, CredentialError, Error, MemoryStore, Precondition};
use auth_password::{
    Argon2Settings, Hasher, HashingPool, ScramAuthenticator, ScramVerifier, UserRecord, Users,
};
use auth_tests::postgres::Postgres;
use auth_tests::scram_client::{Binding, scram_attempt};
use secrecy::SecretString;

/// Includes characters SASLprep normalizes (NFKC: U+2460 CIRCLED DIGIT ONE becomes `1`,
/// U+00A0 NO-BREAK SPACE becomes a space), so both sides must normalize identically.
const TRICKY: &str = "pä\u{00A0}ss\u{2460}wörd";

fn hasher() -> Hasher {
    let s = Argon2Settings {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    };
    Hasher::with_pool(HashingPool::new(1, &s), s).unwrap()
}

#[tokio::test]
async fn verifiers_from_postgres_authenticate_through_our_server() {
    let pg = Postgres::start_with_host_auth("scram-sha-256").unwrap_or_else(|e| panic!("{e}"));
    pg.psql("SET password_encryption = 'scram-sha-256'; CREATE ROLE bob LOGIN PASSWORD 'bob secret 123'")
        .unwrap();
    pg.psql(&format!("CREATE ROLE tricky LOGIN PASSWORD '{TRICKY}'"))
        .unwrap();
    let users = Users::new(Arc::new(MemoryStore::new()));
    for role in ["bob", "tricky"] {
        let verifier = pg
            .psql(&format!(
                "SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"
            ))
            .unwrap();
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
        ScramVerifier::parse(&verifier).unwrap();
        let record = UserRecord {
            scram: Some(verifier),
            ..UserRecord::default()
        };
        users
            .put(role, &record, Precondition::Absent)
            .await
            .unwrap();
    }
    let auth = ScramAuthenticator::new(users, [0x5A; 32]);
    for (user, password) in [("bob", "bob secret 123"), ("tricky", TRICKY)] {
        let (mut attempt, verified) = scram_attempt(user, password, Binding::None, None);
        let out = auth.authenticate(&mut attempt).await;
        assert_eq!(
            out.session().map(|s| s.principal().to_owned()),
            Some(user.to_owned()),
            "{out:?}"
        );
        assert!(verified.load(Ordering::SeqCst));
    }
    let (mut attempt, _) = scram_attempt("bob", "bob secret 124", Binding::None, None);
    assert_eq!(
        auth.authenticate(&mut attempt)
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::Invalid)
    );
}

#[tokio::test]
async fn verifiers_we_generate_are_accepted_by_postgres() {
    let pg = Postgres::start_with_host_auth("scram-sha-256").unwrap_or_else(|e| panic!("{e}"));
    let hasher = hasher();
    for (role, password) in [("carol", "carol secret 456"), ("tricky", TRICKY)] {
        let verifier = hasher
            .scram_verifier(SecretString::from(password.to_owned()))
            .await
            .unwrap()
            .to_string();
        pg.psql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{verifier}'"))
            .unwrap();
        // PostgreSQL stored our verifier as is (it did not hash it again).
        let stored = pg
            .psql(&format!(
                "SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"
            ))
            .unwrap();
        assert_eq!(stored, verifier);
        assert_eq!(
            pg.psql_as(role, password, "SELECT current_user").unwrap(),
            role
        );
    }
    let err = pg
        .psql_as("carol", "carol secret 457", "SELECT 1")
        .unwrap_err();
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
}
