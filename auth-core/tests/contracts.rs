//! auth-core's own implementations run the published contract suites: the in-memory
//! store, the API-key authenticator, a chain, and the `Box`/`Arc<dyn>` wrappers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use auth_core::contract::authenticator::{
    AuthenticatorCapabilities, AuthenticatorFixture, run_all as run_auth_suite,
};
use auth_core::contract::store::{StoreFixture, run_all as run_store_suite};
use auth_core::secrecy::SecretSlice;
use auth_core::store::RecordMeta;
use auth_core::{
    ApiKeyAuthenticator, ApiKeyGrant, Attempt, Authenticator, Chain, ConnectionInfo, Control,
    Credential, CredentialStore, Key, ManualClock, MemoryStore, Precondition, Protocol, Record,
    StoreError,
};
use secrecy::SecretString;

const SECRET: &str = "s3cr3t-0123456789-abcdefghij-KLMNOP";
const WRONG: &str = "wrong-0123456789-abcdefghij-KLMNOPQ";

#[tokio::test]
async fn memory_store_passes_the_store_suite_with_exact_timestamps() {
    let clock = ManualClock::at_fixed_epoch();
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    run_store_suite(&store, &StoreFixture::new("contract-").with_clock(clock)).await;
}

#[tokio::test]
async fn memory_store_passes_the_store_suite_on_the_system_clock() {
    let store = MemoryStore::new();
    run_store_suite(&store, &StoreFixture::new("x/")).await;
    // Again on the same store: deleted keys keep their versions and nothing breaks.
    run_store_suite(&store, &StoreFixture::new("x/")).await;
}

/// A store that counts its operations, so the suite can prove a foreign credential
/// causes no I/O.
#[derive(Debug)]
struct Counting {
    inner: MemoryStore,
    ops: Arc<AtomicU64>,
}

#[async_trait]
impl CredentialStore for Counting {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
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

fn attempt(credential: Credential) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "192.0.2.10:443".parse().unwrap()),
        credential,
    )
}

async fn api_key_setup() -> (
    ApiKeyAuthenticator,
    AuthenticatorFixture,
    AuthenticatorCapabilities,
) {
    let ops = Arc::new(AtomicU64::new(0));
    let store = Arc::new(Counting {
        inner: MemoryStore::new(),
        ops: ops.clone(),
    });
    ApiKeyAuthenticator::register(
        store.as_ref(),
        "ci",
        &SecretString::from(SECRET.to_owned()),
        ApiKeyGrant {
            principal: "ci-runner".into(),
            roles: vec![auth_core::Role::Service],
            scopes: vec!["kms:encrypt".into()],
        },
    )
    .await
    .unwrap();
    let fixture = AuthenticatorFixture {
        valid: Arc::new(|| attempt(Credential::api_key(format!("ci.{SECRET}")))),
        wrong_secret: Arc::new(|| attempt(Credential::api_key(format!("ci.{WRONG}")))),
        unknown_principal: Arc::new(|| attempt(Credential::api_key(format!("nobody.{SECRET}")))),
        foreign: Arc::new(|| attempt(Credential::password("ci", SECRET))),
        principal: "ci-runner".into(),
        secrets: vec![SECRET.into(), WRONG.into()],
    };
    let caps = AuthenticatorCapabilities {
        io_counter: Some(Arc::new(move || ops.load(Ordering::SeqCst))),
        ..AuthenticatorCapabilities::default()
    };
    (ApiKeyAuthenticator::new(store), fixture, caps)
}

#[tokio::test]
async fn api_key_authenticator_passes_the_authenticator_suite() {
    let (auth, fixture, caps) = api_key_setup().await;
    run_auth_suite(&auth, &fixture, &caps).await;
}

#[tokio::test]
async fn boxed_and_arced_authenticators_pass_the_suite() {
    let (auth, fixture, caps) = api_key_setup().await;
    let boxed: Box<dyn Authenticator> = Box::new(auth);
    run_auth_suite(&boxed, &fixture, &caps).await;
    let arced: Arc<dyn Authenticator> = Arc::from(boxed);
    run_auth_suite(&arced, &fixture, &caps).await;
}

#[tokio::test]
async fn a_chain_passes_the_authenticator_suite() {
    let (auth, fixture, caps) = api_key_setup().await;
    // A link that declines everything in front, as a real fallback chain has.
    let other = ApiKeyAuthenticator::new(Arc::new(MemoryStore::new()));
    let chain = Chain::builder()
        .link_with(Arc::new(BearerOnly), Control::SUFFICIENT)
        .link(Arc::new(auth))
        .build();
    run_auth_suite(&chain, &fixture, &caps).await;
    drop(other);
}

#[tokio::test]
#[should_panic(expected = "contract property `declines_foreign_credential` broken")]
async fn the_suite_catches_an_authenticator_that_claims_everything() {
    let (_, fixture, caps) = api_key_setup().await;
    run_auth_suite(&Greedy, &fixture, &caps).await;
}

#[tokio::test]
#[should_panic(
    expected = "contract property `wrong_secret_and_unknown_principal_look_alike` broken"
)]
async fn the_suite_catches_user_enumeration() {
    let (auth, fixture, caps) = api_key_setup().await;
    run_auth_suite(&Enumerating(auth), &fixture, &caps).await;
}

/// Only bearer tokens; declines everything else.
#[derive(Debug)]
struct BearerOnly;

#[async_trait]
impl Authenticator for BearerOnly {
    fn name(&self) -> &str {
        "bearer-only"
    }
    fn accepts(&self) -> &[auth_core::CredentialKind] {
        &[auth_core::CredentialKind::Bearer]
    }
    async fn authenticate(&self, _: &mut Attempt) -> auth_core::Outcome {
        auth_core::Outcome::rejected(auth_core::CredentialError::Invalid, "no tokens are valid")
    }
}

/// Broken on purpose: supports every credential.
#[derive(Debug)]
struct Greedy;

#[async_trait]
impl Authenticator for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }
    fn accepts(&self) -> &[auth_core::CredentialKind] {
        &[
            auth_core::CredentialKind::Password,
            auth_core::CredentialKind::ApiKey,
        ]
    }
    fn supports(&self, _: &Credential) -> bool {
        true
    }
    async fn authenticate(&self, _: &mut Attempt) -> auth_core::Outcome {
        auth_core::Outcome::rejected(auth_core::CredentialError::Invalid, "")
    }
}

/// Broken on purpose: tells unknown users apart.
#[derive(Debug)]
struct Enumerating(ApiKeyAuthenticator);

#[async_trait]
impl Authenticator for Enumerating {
    fn name(&self) -> &str {
        "enumerating"
    }
    fn accepts(&self) -> &[auth_core::CredentialKind] {
        self.0.accepts()
    }
    fn supports(&self, c: &Credential) -> bool {
        self.0.supports(c)
    }
    async fn authenticate(&self, a: &mut Attempt) -> auth_core::Outcome {
        let out = self.0.authenticate(a).await;
        match out.failure() {
            Some(f) if f.detail.contains("unknown") => auth_core::Outcome::rejected(
                auth_core::CredentialError::MissingClaim,
                "no such user",
            ),
            _ => out,
        }
    }
}

#[tokio::test]
async fn the_directory_over_the_memory_store_passes_the_accounts_suite() {
    use auth_core::account::Directory;
    use auth_core::contract::accounts::{AccountsFixture, run_all, seed_directory};
    let directory = Directory::new(Arc::new(MemoryStore::new()));
    let fixture = AccountsFixture::standard("acct-");
    seed_directory(&directory, &fixture).await.unwrap();
    run_all(Arc::new(directory), &fixture).await;
}

/// Accounts that forget a state: the suite must notice.
#[derive(Debug)]
struct EveryoneActive(auth_core::account::Directory);

#[async_trait]
impl auth_core::Accounts for EveryoneActive {
    async fn account(
        &self,
        user: &str,
    ) -> Result<Option<auth_core::Account>, auth_core::account::AccountsError> {
        Ok(auth_core::Accounts::account(&self.0, user).await?.map(|a| {
            auth_core::Account::active(a.name)
                .with_roles(a.roles)
                .with_scopes(a.scopes)
        }))
    }
}

#[tokio::test]
#[should_panic(expected = "contract property `reads_what_was_stored` broken")]
async fn the_accounts_suite_catches_a_directory_that_forgets_states() {
    use auth_core::account::Directory;
    use auth_core::contract::accounts::{AccountsFixture, run_all, seed_directory};
    let directory = Directory::new(Arc::new(MemoryStore::new()));
    let fixture = AccountsFixture::standard("acct-");
    seed_directory(&directory, &fixture).await.unwrap();
    run_all(Arc::new(EveryoneActive(directory)), &fixture).await;
}
