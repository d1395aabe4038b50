//! The contract every [`Authenticator`] keeps.
//!
//! # Example
//!
//! The [`ApiKeyAuthenticator`](crate::ApiKeyAuthenticator) over the in-memory store, with
//! one registered key. The fixture makes a fresh [`Attempt`] for each case:
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::contract::authenticator::{
//!     AuthenticatorCapabilities, AuthenticatorFixture, run_all,
//! };
//! use auth_core::secrecy::SecretString;
//! use auth_core::{
//!     ApiKeyAuthenticator, ApiKeyGrant, Attempt, ConnectionInfo, Credential, MemoryStore,
//!     Protocol,
//! };
//!
//! const SECRET: &str = "s3cr3t-0123456789-abcdefghij-KLMNOP";
//! const WRONG: &str = "wrong-0123456789-abcdefghij-KLMNOPQ";
//!
//! fn attempt(credential: Credential) -> Attempt {
//!     let peer = ([192, 0, 2, 10], 443).into();
//!     Attempt::new(ConnectionInfo::tcp(Protocol::Http, peer), credential)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
//! let secret = SecretString::from(SECRET.to_owned());
//! ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await?;
//!
//! let fixture = AuthenticatorFixture {
//!     valid: Arc::new(|| attempt(Credential::api_key(format!("ci.{SECRET}")))),
//!     wrong_secret: Arc::new(|| attempt(Credential::api_key(format!("ci.{WRONG}")))),
//!     unknown_principal: Arc::new(|| attempt(Credential::api_key(format!("nobody.{SECRET}")))),
//!     foreign: Arc::new(|| attempt(Credential::password("ci", SECRET))),
//!     principal: "ci".into(),
//!     secrets: vec![SECRET.into(), WRONG.into()],
//! };
//! let auth = ApiKeyAuthenticator::new(store);
//! run_all(&auth, &fixture, &AuthenticatorCapabilities::default()).await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use futures::future::join_all;

use super::{broken, check};
use crate::attempt::Attempt;
use crate::authenticator::{Authenticator, kinds_include};
use crate::outcome::{Outcome, OutcomeClass};

/// Makes a fresh [`Attempt`] each time it is called.
pub type AttemptFactory = Arc<dyn Fn() -> Attempt + Send + Sync>;

/// The attempts and expectations the suite needs, provided by the implementer.
#[derive(Clone)]
pub struct AuthenticatorFixture {
    /// An attempt with a valid credential.
    pub valid: AttemptFactory,
    /// The same principal with a wrong secret.
    pub wrong_secret: AttemptFactory,
    /// A principal the authenticator does not know.
    pub unknown_principal: AttemptFactory,
    /// A credential of a kind the authenticator does not support.
    pub foreign: AttemptFactory,
    /// The principal the valid attempt authenticates as.
    pub principal: String,
    /// Every secret text used in the attempts; none may appear in any `Debug` or `Display`.
    pub secrets: Vec<String>,
}

/// What the implementation can do, and hooks the suite uses to observe it.
#[derive(Clone)]
pub struct AuthenticatorCapabilities {
    /// Counts the implementation's backend operations (queries, HTTP calls, GSS calls);
    /// when present, the suite checks a foreign credential causes none.
    pub io_counter: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// How many attempts the concurrency property runs at once.
    pub concurrency: usize,
    /// The credential itself names and proves its principal (a signed token, an
    /// introspected token, a Kerberos ticket): no user list is consulted, so the fixture's
    /// "unknown principal" is a credential the authenticator cannot verify (another
    /// issuer, another realm), whose error may differ from a wrong signature's without
    /// revealing which users exist. The suite then only requires both to fail.
    pub credential_names_principal: bool,
}

impl Default for AuthenticatorCapabilities {
    fn default() -> Self {
        Self {
            io_counter: None,
            concurrency: 16,
            credential_names_principal: false,
        }
    }
}

/// Runs every property.
pub async fn run_all(
    auth: &dyn Authenticator,
    fixture: &AuthenticatorFixture,
    caps: &AuthenticatorCapabilities,
) {
    name_is_stable(auth).await;
    declines_foreign_credential(auth, fixture, caps).await;
    accepts_valid_credential(auth, fixture).await;
    if caps.credential_names_principal {
        wrong_secret_and_unknown_principal_both_fail(auth, fixture).await;
    } else {
        wrong_secret_and_unknown_principal_look_alike(auth, fixture).await;
    }
    secrets_never_in_debug_or_display(auth, fixture).await;
    concurrent_attempts_are_independent(auth, fixture, caps).await;
}

/// `name()` is non-empty and does not change between calls.
pub async fn name_is_stable(auth: &dyn Authenticator) {
    let name = auth.name().to_owned();
    check(!name.is_empty(), "name_is_stable", || {
        "name() is empty".into()
    });
    check(auth.name() == name, "name_is_stable", || {
        format!("name() changed from `{name}` to `{}`", auth.name())
    });
}

/// A credential of a foreign kind is declined by `supports()`, answered with
/// `NotApplicable` by `authenticate()`, and costs no backend operation.
pub async fn declines_foreign_credential(
    auth: &dyn Authenticator,
    fixture: &AuthenticatorFixture,
    caps: &AuthenticatorCapabilities,
) {
    const P: &str = "declines_foreign_credential";
    let mut attempt = (fixture.foreign)();
    check(!auth.supports(&attempt.credential), P, || {
        format!("supports() accepted {:?}", attempt.credential)
    });
    check(
        !kinds_include(auth.accepts(), &attempt.credential),
        P,
        || format!("accepts() lists the kind of {:?}", attempt.credential),
    );
    let before = caps.io_counter.as_ref().map(|c| c());
    let outcome = auth.authenticate(&mut attempt).await;
    check(outcome.class() == OutcomeClass::NotApplicable, P, || {
        format!("authenticate() returned {outcome:?} instead of NotApplicable")
    });
    if let (Some(counter), Some(before)) = (&caps.io_counter, before) {
        let after = counter();
        check(after == before, P, || {
            format!(
                "{} backend operations for a foreign credential",
                after - before
            )
        });
    }
}

/// The valid credential is supported, listed in `accepts()`, and authenticates as the
/// fixture's principal with a session naming this method.
pub async fn accepts_valid_credential(auth: &dyn Authenticator, fixture: &AuthenticatorFixture) {
    const P: &str = "accepts_valid_credential";
    let mut attempt = (fixture.valid)();
    check(auth.supports(&attempt.credential), P, || {
        format!("supports() declined {:?}", attempt.credential)
    });
    check(
        kinds_include(auth.accepts(), &attempt.credential),
        P,
        || {
            format!(
                "accepts() = {:?} omits the valid credential's kind",
                auth.accepts()
            )
        },
    );
    match auth.authenticate(&mut attempt).await {
        Outcome::Authenticated(session) => {
            check(session.principal() == fixture.principal, P, || {
                format!(
                    "principal `{}` != `{}`",
                    session.principal(),
                    fixture.principal
                )
            });
            check(!session.method().is_empty(), P, || {
                "session has no method".into()
            });
        }
        other => broken(P, format!("valid credential gave {other:?}")),
    }
}

/// A wrong secret and an unknown principal look the same to the client: the error a chain
/// would report for each ([`Engine::decide`](crate::Engine::decide) turns a
/// not-applicable answer for a supported credential into
/// [`CredentialError::Invalid`](crate::CredentialError::Invalid)) is the same kind.
pub async fn wrong_secret_and_unknown_principal_look_alike(
    auth: &dyn Authenticator,
    fixture: &AuthenticatorFixture,
) {
    const P: &str = "wrong_secret_and_unknown_principal_look_alike";
    let visible = |o: &Outcome| match o {
        Outcome::NotApplicable => Some(crate::Error::Credential(crate::CredentialError::Invalid)),
        other => other.failure().map(|f| f.error),
    };
    let wrong = auth.authenticate(&mut (fixture.wrong_secret)()).await;
    let unknown = auth.authenticate(&mut (fixture.unknown_principal)()).await;
    let (Some(w), Some(u)) = (visible(&wrong), visible(&unknown)) else {
        broken(
            P,
            format!("expected two failures, got {wrong:?} and {unknown:?}"),
        );
    };
    check(w == u, P, || {
        format!("the client can tell them apart: {w:?} ({wrong:?}) vs {u:?} ({unknown:?})")
    });
}

/// For credentials that name their principal: a wrong secret and an unverifiable
/// principal both fail (neither authenticates nor is declined).
pub async fn wrong_secret_and_unknown_principal_both_fail(
    auth: &dyn Authenticator,
    fixture: &AuthenticatorFixture,
) {
    const P: &str = "wrong_secret_and_unknown_principal_both_fail";
    for make in [&fixture.wrong_secret, &fixture.unknown_principal] {
        let outcome = auth.authenticate(&mut make()).await;
        check(outcome.class() == OutcomeClass::Rejected, P, || {
            format!("expected a rejection, got {outcome:?}")
        });
    }
}

/// No secret of the fixture appears in the `Debug` of the authenticator, the attempts, the
/// outcomes and sessions, or the `Display` of failures.
pub async fn secrets_never_in_debug_or_display(
    auth: &dyn Authenticator,
    fixture: &AuthenticatorFixture,
) {
    const P: &str = "secrets_never_in_debug_or_display";
    let mut shown = vec![format!("{auth:?}"), format!("{auth:#?}")];
    for make in [
        &fixture.valid,
        &fixture.wrong_secret,
        &fixture.unknown_principal,
    ] {
        let mut attempt = make();
        shown.push(format!("{attempt:?}"));
        let outcome = auth.authenticate(&mut attempt).await;
        shown.push(format!("{attempt:?} {outcome:?} {outcome:#?}"));
        if let Some(f) = outcome.failure() {
            shown.push(format!("{f} {f:?}"));
        }
        if let Some(s) = outcome.session() {
            shown.push(format!("{s:?}"));
        }
    }
    for secret in fixture.secrets.iter().filter(|s| !s.is_empty()) {
        for text in &shown {
            check(!text.contains(secret.as_str()), P, || {
                format!("a secret appears in `{text}`")
            });
        }
    }
}

/// Many attempts at once, valid and wrong interleaved, each get their own right answer.
pub async fn concurrent_attempts_are_independent(
    auth: &dyn Authenticator,
    fixture: &AuthenticatorFixture,
    caps: &AuthenticatorCapabilities,
) {
    const P: &str = "concurrent_attempts_are_independent";
    let n = caps.concurrency.max(2);
    let results = join_all((0..n).map(|i| async move {
        let valid = i % 2 == 0;
        let mut attempt = if valid {
            (fixture.valid)()
        } else {
            (fixture.wrong_secret)()
        };
        (valid, auth.authenticate(&mut attempt).await.class())
    }))
    .await;
    for (i, (valid, class)) in results.into_iter().enumerate() {
        let expected = if valid {
            OutcomeClass::Success
        } else {
            OutcomeClass::Rejected
        };
        check(class == expected, P, || {
            format!(
                "attempt {i} ({}) gave {class:?}",
                if valid { "valid" } else { "wrong" }
            )
        });
    }
}
